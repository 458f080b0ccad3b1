package verify

import "testing"

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	var l lru[string, int]
	l.init(10)
	l.put("a", 1, 4)
	l.put("b", 2, 4)
	if _, ok := l.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	l.put("c", 3, 4) // over 10: b goes
	if _, ok := l.get("b"); ok {
		t.Error("b kept, want it evicted (least recently used)")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := l.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	l.put("huge", 4, 11) // costs more than the bound: not kept, nothing evicted
	if _, ok := l.get("huge"); ok || l.used != 8 || len(l.items) != 2 {
		t.Errorf("huge kept=%v, used %d, %d items", ok, l.used, len(l.items))
	}
	l.put("a", 5, 2) // replacing a value updates its cost
	if v, _ := l.get("a"); v != 5 || l.used != 6 {
		t.Errorf("a=%d, used %d, want 5 and 6", v, l.used)
	}
}
