package api

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestUnknownUserCostsABcryptComparison: an unknown user's password is
// compared with a dummy bcrypt hash of the users' cost, so that telling
// an unknown user from a wrong password by timing is not possible. Counted,
// not timed.
func TestUnknownUserCostsABcryptComparison(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("admin-pw"), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string][]byte{"admin": hash}
	b, err := newBasicAuth(users)
	if err != nil {
		t.Fatal(err)
	}
	var compared [][]byte
	b.compare = func(h, p []byte) error {
		compared = append(compared, h)
		return bcrypt.CompareHashAndPassword(h, p)
	}
	tests := []struct {
		name, user, pass string
		want             bool
		wantCompares     int
	}{
		{"unknown user", "eve", "admin-pw", false, 1},
		{"unknown user, empty password", "", "", false, 1},
		{"wrong password", "admin", "nope", false, 1},
		{"right password", "admin", "admin-pw", true, 1},
		{"right password again (remembered)", "admin", "admin-pw", true, 0},
		{"wrong password after a right one", "admin", "nope", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compared = nil
			if got := b.check(tt.user, tt.pass); got != tt.want {
				t.Errorf("check = %v, want %v", got, tt.want)
			}
			if len(compared) != tt.wantCompares {
				t.Fatalf("%d bcrypt comparisons, want %d", len(compared), tt.wantCompares)
			}
			if _, known := users[tt.user]; !known && tt.wantCompares > 0 {
				if bytes.Equal(compared[0], hash) {
					t.Errorf("an unknown user was compared with a real user's hash")
				}
				if cost, err := bcrypt.Cost(compared[0]); err != nil || cost != bcrypt.MinCost+1 {
					t.Errorf("dummy hash cost %d (%v), want the users' %d", cost, err, bcrypt.MinCost+1)
				}
			}
		})
	}
}
