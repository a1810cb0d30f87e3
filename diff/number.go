package diff

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Tolerance is how far apart two numbers at a path may be and still be
// equal: |a-b| <= Abs, or |a-b| <= Rel*max(|a|,|b|). Zero fields allow
// nothing.
type Tolerance struct{ Abs, Rel float64 }

// ParseTolerance parses "0.005" as an absolute tolerance and "1%" as a
// relative one (Rel 0.01).
func ParseTolerance(s string) (Tolerance, error) {
	t := strings.TrimSpace(s)
	rel := strings.HasSuffix(t, "%")
	t = strings.TrimSpace(strings.TrimSuffix(t, "%"))
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return Tolerance{}, fmt.Errorf("tolerance %q: want a non-negative number (0.005) or percentage (1%%)", s)
	}
	if rel {
		return Tolerance{Rel: f / 100}, nil
	}
	return Tolerance{Abs: f}, nil
}

func (t Tolerance) validate() error {
	for _, f := range []float64{t.Abs, t.Rel} {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return errors.New("tolerance must be finite and not negative")
		}
	}
	return nil
}

// decimal is a JSON number in canonical form: value = ±digits × 10^exp,
// with digits free of leading and trailing zeros (empty for zero), so two
// numbers are equal exactly when their decimals are.
type decimal struct {
	neg    bool
	digits []byte
	exp    int64
}

// maxExp bounds exponents we normalise exactly; beyond it numbers compare
// by their literal text.
const maxExp = 1e15

// parseDecimal parses a valid JSON number literal; ok is false for
// exponents too large to handle exactly.
func parseDecimal(s string, buf []byte) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	digits := buf[:0]
	var fracLen int64
	inFrac := false
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			inFrac = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if len(digits) == 0 && c == '0' {
			if inFrac {
				fracLen++
			}
			continue // leading zero
		}
		digits = append(digits, c)
		if inFrac {
			fracLen++
		}
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		for ; i < len(s); i++ {
			exp = exp*10 + int64(s[i]-'0')
			if exp > maxExp {
				return d, false
			}
		}
		if eneg {
			exp = -exp
		}
	}
	exp -= fracLen
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	d.digits, d.exp = digits, exp
	if len(digits) == 0 { // zero: sign and exponent do not matter
		d.neg, d.exp = false, 0
	}
	return d, true
}

// numbersEqual reports whether two JSON number literals denote the same
// value exactly (10 == 10.0 == 1e1; 9007199254740993 != 9007199254740992).
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	var ba, bb [32]byte
	da, ok1 := parseDecimal(a, ba[:0])
	db, ok2 := parseDecimal(b, bb[:0])
	if !ok1 || !ok2 {
		return false
	}
	return da.neg == db.neg && da.exp == db.exp && bytes.Equal(da.digits, db.digits)
}

// withinTolerance reports whether two JSON number literals are within t.
// It computes exactly (big.Rat) unless an exponent is out of range, where
// it falls back to float64.
func withinTolerance(a, b string, t Tolerance) bool {
	if t.Abs == 0 && t.Rel == 0 {
		return false
	}
	var ba, bb [32]byte
	da, ok1 := parseDecimal(a, ba[:0])
	db, ok2 := parseDecimal(b, bb[:0])
	if !ok1 || !ok2 || !da.small() || !db.small() {
		fa, err1 := strconv.ParseFloat(a, 64)
		fb, err2 := strconv.ParseFloat(b, 64)
		if (err1 != nil && !errors.Is(err1, strconv.ErrRange)) || (err2 != nil && !errors.Is(err2, strconv.ErrRange)) {
			return false
		}
		if math.IsInf(fa, 0) || math.IsInf(fb, 0) {
			return false
		}
		diff := math.Abs(fa - fb)
		return diff <= t.Abs || diff <= t.Rel*math.Max(math.Abs(fa), math.Abs(fb))
	}
	ra, rb := da.rat(), db.rat()
	diff := new(big.Rat).Sub(ra, rb)
	diff.Abs(diff)
	if t.Abs > 0 && diff.Cmp(new(big.Rat).SetFloat64(t.Abs)) <= 0 {
		return true
	}
	if t.Rel > 0 {
		ra.Abs(ra)
		rb.Abs(rb)
		m := ra
		if rb.Cmp(ra) > 0 {
			m = rb
		}
		limit := m.Mul(m, new(big.Rat).SetFloat64(t.Rel))
		return diff.Cmp(limit) <= 0
	}
	return false
}

// small reports whether the decimal is cheap to turn into a big.Rat.
func (d decimal) small() bool {
	return len(d.digits) <= 400 && d.exp >= -400 && d.exp <= 400
}

func (d decimal) rat() *big.Rat {
	n := new(big.Int)
	if len(d.digits) > 0 {
		n.SetString(string(d.digits), 10)
	}
	if d.neg {
		n.Neg(n)
	}
	r := new(big.Rat).SetInt(n)
	if d.exp != 0 {
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs64(d.exp)), nil)
		pr := new(big.Rat).SetInt(p)
		if d.exp > 0 {
			r.Mul(r, pr)
		} else {
			r.Quo(r, pr)
		}
	}
	return r
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
