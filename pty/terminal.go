package pty

import (
	"os"

	creackpty "github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openTerminal opens a new pseudo-terminal pair. The controller side comes
// back registered with the runtime poller, so its reads and writes honour
// deadlines and Close interrupts them.
//
// creack/pty learns the name of the pair through (*os.File).Fd, which puts
// the file in blocking mode for good; a duplicate of the descriptor in
// non-blocking mode makes a pollable *os.File again. Everything done to the
// controller afterwards goes through SyscallConn, never Fd.
func openTerminal() (controller, tty *os.File, err error) {
	blocking, tty, err := creackpty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.FcntlInt(blocking.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = blocking.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		_ = tty.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}

// controlTerminal runs op on the controller's descriptor.
func controlTerminal(controller *os.File, op func(fd int) error) error {
	conn, err := controller.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := conn.Control(func(fd uintptr) { opErr = op(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

func setWindowSize(controller *os.File, rows, cols uint16) error {
	return controlTerminal(controller, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// setTermios changes the line discipline's settings. On Linux, termios
// requests on the controller act on the terminal the process sees. TCSETS
// applies at once: TCSETSW would wait for the output to drain, which
// never happens while reading is paused.
func setTermios(controller *os.File, change func(*unix.Termios)) error {
	return controlTerminal(controller, func(fd int) error {
		termios, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		change(termios)
		return unix.IoctlSetTermios(fd, unix.TCSETS, termios)
	})
}

// makeSane resets the modes to what a new Linux terminal has, as
// `stty sane` does, with UTF-8 aware erasing on: canonical input with
// echo, signals from ^C ^\ ^Z, CR read as NL, NL written as CR NL, and the
// standard control characters. The speed is left alone.
func makeSane(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.IGNPAR | unix.PARMRK | unix.INPCK |
		unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.IXOFF | unix.IUCLC | unix.IXANY
	t.Iflag |= unix.ICRNL | unix.IXON | unix.IMAXBEL | unix.IUTF8

	t.Oflag &^= unix.OLCUC | unix.OCRNL | unix.ONOCR | unix.ONLRET | unix.OFILL | unix.OFDEL |
		unix.NLDLY | unix.CRDLY | unix.TABDLY | unix.BSDLY | unix.VTDLY | unix.FFDLY
	t.Oflag |= unix.OPOST | unix.ONLCR

	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD

	t.Lflag &^= unix.ECHONL | unix.NOFLSH | unix.XCASE | unix.TOSTOP | unix.ECHOPRT
	t.Lflag |= unix.ISIG | unix.ICANON | unix.IEXTEN | unix.ECHO | unix.ECHOE | unix.ECHOK |
		unix.ECHOCTL | unix.ECHOKE

	t.Cc = [len(t.Cc)]uint8{}
	for index, char := range map[int]uint8{
		unix.VINTR:    'C' & 0x1f,
		unix.VQUIT:    '\\' & 0x1f,
		unix.VERASE:   0x7f,
		unix.VKILL:    'U' & 0x1f,
		unix.VEOF:     'D' & 0x1f,
		unix.VMIN:     1,
		unix.VSTART:   'Q' & 0x1f,
		unix.VSTOP:    'S' & 0x1f,
		unix.VSUSP:    'Z' & 0x1f,
		unix.VREPRINT: 'R' & 0x1f,
		unix.VDISCARD: 'O' & 0x1f,
		unix.VWERASE:  'W' & 0x1f,
		unix.VLNEXT:   'V' & 0x1f,
	} {
		t.Cc[index] = char
	}
}

// makePipe sets the modes of `stty sane raw icrnl isig -echo`: input goes
// to the process byte by byte and is not echoed, output is passed through
// untouched, CR still reads as NL and ^C still interrupts.
func makePipe(t *unix.Termios) {
	makeSane(t)
	t.Iflag &^= unix.BRKINT | unix.IXON | unix.IMAXBEL
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ICANON | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOKE
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}
