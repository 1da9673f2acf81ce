package ot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
)

// The history of a file is an append-only log of records:
//
//	length   uint32, little endian: the bytes of kind and body
//	checksum uint32, little endian: CRC-32C (Castagnoli) of kind and body
//	kind     byte
//	body     length-1 bytes
//
// The first record is a header; then come packets, version 1, 2, 3, … in
// order, and disk marks between them. A record is valid only if it is whole
// and its checksum matches; loading stops at the first record that is not
// (a crash in the middle of an append) and cuts the log there.
const (
	recordHeaderSize = 8
	// maxRecordBody bounds a record: bigger lengths are garbage.
	maxRecordBody = 64 << 20

	// kindHeader's body is headerMagic followed by the file's canonical
	// workspace-relative path.
	kindHeader byte = 1
	// kindPacket's body is an api.OTPacket as sent to clients: version,
	// ops, crc32, committed, nonce, userId.
	kindPacket byte = 2
	// kindDisk's body says what the file on disk held at some point:
	// uvarint version, uint32 CRC-32 (IEEE) of the file, one byte of
	// flags (diskExists). It is a hint for reconciling the file with the
	// history at load time.
	kindDisk byte = 3

	diskExists byte = 1
)

const headerMagic = "conman-ot-history/1\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord reports a record that is torn, garbled or out of place.
var errBadRecord = errors.New("bad record")

// appendRecord appends a record of kind to buf; body appends the body.
func appendRecord(buf []byte, kind byte, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderSize)...)
	buf = append(buf, kind)
	buf, err := body(buf)
	if err != nil {
		return buf[:start], err
	}
	payload := buf[start+recordHeaderSize:]
	if len(payload) > maxRecordBody {
		return buf[:start], fmt.Errorf("record of %d bytes is too large", len(payload))
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf, nil
}

// appendPacket appends a packet record.
func appendPacket(buf []byte, pkt *api.OTPacket) ([]byte, error) {
	return appendRecord(buf, kindPacket, func(b []byte) ([]byte, error) {
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, pkt)
	})
}

// appendHeader appends the header record for path.
func appendHeader(buf []byte, path string) []byte {
	buf, _ = appendRecord(buf, kindHeader, func(b []byte) ([]byte, error) {
		return append(append(b, headerMagic...), path...), nil
	})
	return buf
}

// diskMark is the body of a kindDisk record.
type diskMark struct {
	version uint32
	crc     uint32
	exists  bool
}

// appendDiskMark appends a disk mark record.
func appendDiskMark(buf []byte, m diskMark) []byte {
	buf, _ = appendRecord(buf, kindDisk, func(b []byte) ([]byte, error) {
		b = binary.AppendUvarint(b, uint64(m.version))
		b = binary.LittleEndian.AppendUint32(b, m.crc)
		flags := byte(0)
		if m.exists {
			flags |= diskExists
		}
		return append(b, flags), nil
	})
	return buf
}

// parseDiskMark decodes a kindDisk body.
func parseDiskMark(body []byte) (diskMark, error) {
	v, n := binary.Uvarint(body)
	if n <= 0 || v > 1<<32-1 || len(body) != n+5 {
		return diskMark{}, fmt.Errorf("%w: disk mark", errBadRecord)
	}
	return diskMark{
		version: uint32(v),
		crc:     binary.LittleEndian.Uint32(body[n:]),
		exists:  body[n+4]&diskExists != 0,
	}, nil
}

// parseHeader returns the path a kindHeader body names.
func parseHeader(body []byte) (string, error) {
	if len(body) < len(headerMagic) || string(body[:len(headerMagic)]) != headerMagic {
		return "", fmt.Errorf("%w: not a history header", errBadRecord)
	}
	return string(body[len(headerMagic):]), nil
}

// parsePacket decodes a kindPacket body.
func parsePacket(body []byte) (*api.OTPacket, error) {
	pkt := &api.OTPacket{}
	if err := proto.Unmarshal(body, pkt); err != nil {
		return nil, fmt.Errorf("%w: packet: %v", errBadRecord, err)
	}
	return pkt, nil
}

// recordReader reads records one after the other from a log.
type recordReader struct {
	r      *bufio.Reader
	size   int64 // of the log, to tell a torn length from a long record
	offset int64 // of the next record
	buf    []byte
}

// newRecordReader reads the log f from its current offset, which must be 0.
func newRecordReader(f *os.File) (*recordReader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &recordReader{r: bufio.NewReaderSize(f, 256<<10), size: fi.Size()}, nil
}

// next returns the next record and its offset. The body is valid until the
// next call. At the clean end of the log it returns io.EOF; a torn or
// garbled record is errBadRecord, and the log's valid part ends at offset.
func (rr *recordReader) next() (kind byte, body []byte, offset int64, err error) {
	var head [recordHeaderSize]byte
	if _, err := io.ReadFull(rr.r, head[:]); err != nil {
		if err == io.EOF {
			return 0, nil, rr.offset, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, rr.offset, fmt.Errorf("%w: torn header", errBadRecord)
		}
		return 0, nil, rr.offset, err
	}
	length := binary.LittleEndian.Uint32(head[:])
	sum := binary.LittleEndian.Uint32(head[4:])
	if length == 0 || length > maxRecordBody || rr.offset+recordHeaderSize+int64(length) > rr.size {
		return 0, nil, rr.offset, fmt.Errorf("%w: length %d", errBadRecord, length)
	}
	if cap(rr.buf) < int(length) {
		rr.buf = make([]byte, length)
	}
	payload := rr.buf[:length]
	if _, err := io.ReadFull(rr.r, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, nil, rr.offset, fmt.Errorf("%w: torn body", errBadRecord)
		}
		return 0, nil, rr.offset, err
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return 0, nil, rr.offset, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	offset = rr.offset
	rr.offset += recordHeaderSize + int64(length)
	return payload[0], payload[1:], offset, nil
}

// readRecordAt reads the record at offset of f.
func readRecordAt(f *os.File, offset int64) (kind byte, body []byte, err error) {
	var head [recordHeaderSize]byte
	if _, err := f.ReadAt(head[:], offset); err != nil {
		return 0, nil, fmt.Errorf("read record at %d: %w", offset, err)
	}
	length := binary.LittleEndian.Uint32(head[:])
	if length == 0 || length > maxRecordBody {
		return 0, nil, fmt.Errorf("read record at %d: %w: length %d", offset, errBadRecord, length)
	}
	payload := make([]byte, length)
	if _, err := f.ReadAt(payload, offset+recordHeaderSize); err != nil {
		return 0, nil, fmt.Errorf("read record at %d: %w", offset, err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
		return 0, nil, fmt.Errorf("read record at %d: %w: checksum mismatch", offset, errBadRecord)
	}
	return payload[0], payload[1:], nil
}
