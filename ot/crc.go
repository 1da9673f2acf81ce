package ot

import "hash/crc32"

// CRC32 returns the CRC-32 (IEEE) of the UTF-8 text s, the same value as
// crc32.ChecksumIEEE([]byte(s)).
func CRC32(s string) uint32 {
	var buf [4096]byte
	crc := uint32(0)
	for len(s) > 0 {
		n := copy(buf[:], s)
		crc = crc32.Update(crc, crc32.IEEETable, buf[:n])
		s = s[n:]
	}
	return crc
}

// A Doc keeps a CRC-32 per node of its rope and combines them, so that an
// edit costs a CRC over one leaf and a few combinations per level instead
// of a pass over the whole document. Combining uses polynomial arithmetic
// modulo the IEEE polynomial in crc32's bit-reflected form, where the top
// bit is the coefficient of x^0:
//
//	crc(a ‖ b) = crc(a)·x^(8·len(b)) + crc(b)   (mod P)
//
// which holds for crc32's pre- and post-conditioned values too.

// one is the polynomial 1 in reflected form.
const one = uint32(1) << 31

// mulX returns b·x.
func mulX(b uint32) uint32 {
	return b>>1 ^ crc32.IEEE&-(b&1)
}

// mulX4 holds m·x^4 for the polynomials m of degree 28 to 31, those in
// the low four bits.
var mulX4 = func() (t [16]uint32) {
	for m := range t {
		t[m] = mulX(mulX(mulX(mulX(uint32(m)))))
	}
	return t
}()

// mulModP returns a·b modulo the IEEE polynomial, both reflected. It takes
// a four coefficients at a time, highest degrees first (Horner's rule).
func mulModP(a, b uint32) uint32 {
	// bm[m] = m·b for the polynomials m of degree < 4, reflected in four
	// bits as a's nibbles are: bit 3 is x^0.
	var bm [16]uint32
	bm[8] = b
	bm[4] = mulX(bm[8])
	bm[2] = mulX(bm[4])
	bm[1] = mulX(bm[2])
	for m := 3; m < 16; m++ {
		if low := m & -m; low != m {
			bm[m] = bm[low] ^ bm[m^low]
		}
	}
	var p uint32
	for shift := 0; shift < 32; shift += 4 {
		p = p>>4 ^ mulX4[p&0xf] ^ bm[a>>shift&0xf]
	}
	return p
}

// xPow2 holds x^(2^k) mod P for k = 0…66, enough for the bits of 8·n for
// any int n.
var xPow2 = func() (t [67]uint32) {
	t[0] = one >> 1 // x
	for k := 1; k < len(t); k++ {
		t[k] = mulModP(t[k-1], t[k-1])
	}
	return t
}()

// shiftFor returns x^(8n) mod P, the factor that moves a CRC past n bytes.
func shiftFor(n int) uint32 {
	p := one
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = mulModP(xPow2[k], p)
		}
	}
	return p
}

// crcCombine returns the CRC of a ‖ b from crcA, crcB and shiftB, the
// shiftFor of b's length.
func crcCombine(crcA, crcB, shiftB uint32) uint32 {
	return mulModP(shiftB, crcA) ^ crcB
}
