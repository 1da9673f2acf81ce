package channels

import "testing"

func TestWriteQueueBounds(t *testing.T) {
	frame := func(n int) outFrame { return outFrame{body: make([]byte, n-8)} } // size() adds 8
	tests := []struct {
		name   string
		pushes []int  // frame sizes
		want   []bool // overflow per push
	}{
		{"within the limit", []int{400, 400, 200}, []bool{false, false, false}},
		{"over the limit", []int{600, 500}, []bool{false, true}},
		{"oversized into an empty queue", []int{5000}, []bool{false}},
		{"traffic goes on beside an oversized frame", []int{5000, 600, 400}, []bool{false, false, false}},
		{"but is still bounded", []int{5000, 600, 500}, []bool{false, false, true}},
		{"a second oversized frame overflows", []int{5000, 5000}, []bool{false, true}},
		{"oversized needs an empty queue", []int{100, 5000}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newWriteQueue(1000)
			for i, n := range tt.pushes {
				if _, overflow := q.push(frame(n)); overflow != tt.want[i] {
					t.Fatalf("push %d (%d bytes): overflow %v, want %v", i, n, overflow, tt.want[i])
				}
			}
		})
	}

	t.Run("release frees an oversized frame's room", func(t *testing.T) {
		q := newWriteQueue(1000)
		q.push(frame(5000))
		batch, _, _, _ := q.take(nil)
		q.release(batch[0].size(), batch[0].size())
		if q.bytes != 0 || q.oversized != 0 {
			t.Fatalf("bytes %d oversized %d after release, want 0", q.bytes, q.oversized)
		}
		if _, overflow := q.push(frame(5000)); overflow {
			t.Fatal("an oversized frame refused by an empty queue")
		}
	})
}
