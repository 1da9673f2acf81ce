package ports

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// listener is one listening TCP socket.
type listener struct {
	addr  netip.AddrPort
	inode uint64
}

// tcpListen is the st column of a listening socket.
const tcpListen = "0A"

// scanListeners reads procDir/net/tcp and procDir/net/tcp6 and returns the
// listening sockets. A missing tcp6 (IPv6 disabled) is no error.
func scanListeners(procDir string) ([]listener, error) {
	var out []listener
	for _, name := range []string{"tcp", "tcp6"} {
		raw, err := os.ReadFile(filepath.Join(procDir, "net", name))
		if errors.Is(err, fs.ErrNotExist) && name == "tcp6" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("scan listeners: %w", err)
		}
		ls, err := parseProcNet(raw)
		if err != nil {
			return nil, fmt.Errorf("scan listeners: %s: %w", name, err)
		}
		out = append(out, ls...)
	}
	return out, nil
}

// parseProcNet parses the text of /proc/net/tcp or tcp6:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 12345 ...
//
// keeping the listening sockets.
func parseProcNet(raw []byte) ([]listener, error) {
	var out []listener
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		addr, err := parseHexAddrPort(fields[1])
		if err != nil {
			return nil, err
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad inode %q", fields[9])
		}
		out = append(out, listener{addr: addr, inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddrPort decodes "0100007F:1F90". The kernel prints the address
// as 32-bit words in the host's byte order, the port as a plain number.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	b := make([]byte, len(hexAddr)/2)
	for i := 0; i < len(b); i += 4 {
		word, err := strconv.ParseUint(hexAddr[2*i:2*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
		}
		binary.NativeEndian.PutUint32(b[i:], uint32(word))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// socketInodes returns the inodes of the sockets the process whose fd
// directory is fdDir holds.
func socketInodes(fdDir string) (map[uint64]bool, error) {
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]bool)
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if rest, ok := strings.CutPrefix(target, "socket:["); ok {
			if inode, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
				out[inode] = true
			}
		}
	}
	return out, nil
}
