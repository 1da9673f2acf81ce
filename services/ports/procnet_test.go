package ports

import (
	"net/netip"
	"slices"
	"testing"
)

const sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1059 1 0000000009f1cb78 100 0 0 10 0
   1: 0100007F:8A61 0100007F:A56C 06 00000000:00000000 03:00000702 00000000     0        0 0 3 000000006f91c83d
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
`

const sampleTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 78 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 79 1 0000000000000000 100 0 0 10 0
`

func TestParseProcNet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		text string
		want []listener
	}{
		{"tcp", sampleTCP, []listener{
			{netip.MustParseAddrPort("0.0.0.0:2024"), 1059},
			{netip.MustParseAddrPort("127.0.0.1:8080"), 4242},
		}},
		{"tcp6", sampleTCP6, []listener{
			{netip.MustParseAddrPort("[::]:80"), 77},
			{netip.MustParseAddrPort("[::1]:8081"), 78},
			{netip.MustParseAddrPort("127.0.0.1:8082"), 79}, // v4-mapped
		}},
		{"header only", "  sl  local_address\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcNet([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := parseProcNet([]byte("header\n 0: 0100007G:1F90 0 0A 0 0 0 0 0 1\n")); err == nil {
		t.Fatal("a bad address parsed")
	}
}
