package workspace

// sysRenameat2 is renameat2's number on linux/amd64; the syscall package
// does not define it there.
const sysRenameat2 = 316
