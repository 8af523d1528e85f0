package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The exchange of RFC 7677 section 3: user "user", password "pencil". The
// values agree with the RFC text and were also recomputed independently
// (Python's hashlib.pbkdf2_hmac and hmac) before being written here.
const (
	rfc7677Nonce       = "rOprNGfwEbeRWgbNEkqO"
	rfc7677ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfc7677ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfc7677ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfc7677ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// rfc7677Client returns the client of the RFC 7677 example, with its nonce.
func rfc7677Client() *SCRAM {
	s := NewSCRAMSHA256("user", "pencil")
	s.fixedNonce = rfc7677Nonce
	return s
}

// rfc7677Exchange runs the RFC 7677 exchange on s and fails t on any
// difference from the published messages.
func rfc7677Exchange(t *testing.T, s *SCRAM) {
	t.Helper()
	ctx := context.Background()
	first, err := s.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if string(first) != rfc7677ClientFirst {
		t.Fatalf("client-first = %q, want %q", first, rfc7677ClientFirst)
	}
	final, err := s.Continue(ctx, []byte(rfc7677ServerFirst))
	if err != nil {
		t.Fatalf("Continue: %v", err)
	}
	if string(final) != rfc7677ClientFinal {
		t.Fatalf("client-final = %q, want %q", final, rfc7677ClientFinal)
	}
	if err := s.Finish(ctx, []byte(rfc7677ServerFinal)); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

func TestSCRAMRFC7677Vector(t *testing.T) {
	s := rfc7677Client()
	if got := s.Method(); got != "SCRAM-SHA-256" {
		t.Errorf("Method = %q", got)
	}
	rfc7677Exchange(t, s)
}

// Re-authentication calls Start again on the same value: the second
// exchange must be as good as the first, with the cached keys.
func TestSCRAMReuse(t *testing.T) {
	s := rfc7677Client()
	rfc7677Exchange(t, s)
	rfc7677Exchange(t, s)

	// An exchange abandoned half way does not spoil the next one.
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rfc7677Exchange(t, s)

	// Neither does a failed one.
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Continue(context.Background(), []byte("r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err == nil {
		t.Fatal("foreign nonce accepted")
	}
	rfc7677Exchange(t, s)
}

// With the cache, a second exchange for the same salt and count must not
// rederive; with another salt it must.
func TestSCRAMKeyCache(t *testing.T) {
	s := rfc7677Client()
	rfc7677Exchange(t, s)
	cached := s.clientKey
	rfc7677Exchange(t, s)
	if &s.clientKey[0] != &cached[0] {
		t.Error("keys rederived for the same salt and iteration count")
	}

	ctx := context.Background()
	if _, err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(rfc7677ServerFirst, "s=W22ZaJ0SNY7soEsUEjb6gQ==", "s=QSXCR+Q6sek8bf92", 1)
	final, err := s.Continue(ctx, []byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) == rfc7677ClientFinal {
		t.Error("same proof for another salt: stale cached keys")
	}
}

func TestSCRAMRandomNonce(t *testing.T) {
	s := NewSCRAMSHA256("user", "pencil")
	seen := map[string]bool{}
	for range 3 {
		first, err := s.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		nonce, ok := strings.CutPrefix(string(first), "n,,n=user,r=")
		if !ok || len(nonce) < 22 || !scramPrintable(nonce) {
			t.Fatalf("client-first %q: want a printable nonce of 128 bits or more", first)
		}
		if seen[nonce] {
			t.Fatalf("nonce %q repeated", nonce)
		}
		seen[nonce] = true
	}
}

func TestSCRAMUsernameEscaping(t *testing.T) {
	for _, tc := range []struct{ user, want string }{
		{"user", "n,,n=user,r=N"},
		{"a,b", "n,,n=a=2Cb,r=N"},
		{"a=b", "n,,n=a=3Db,r=N"},
		{"=,=", "n,,n==3D=2C=3D,r=N"},
		{"=2C", "n,,n==3D2C,r=N"},
		{"émile", "n,,n=émile,r=N"},
	} {
		s := NewSCRAMSHA256(tc.user, "pencil")
		s.fixedNonce = "N"
		got, err := s.Start(context.Background())
		if err != nil {
			t.Errorf("%q: %v", tc.user, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%q: client-first = %q, want %q", tc.user, got, tc.want)
		}
	}
}

func TestSCRAMInvalidCredentials(t *testing.T) {
	for _, tc := range []struct{ name, user, password string }{
		{"empty username", "", "pencil"},
		{"NUL in username", "us\x00er", "pencil"},
		{"username not UTF-8", "us\xffer", "pencil"},
		{"empty password", "user", ""},
		{"control character in password", "user", "pen\tcil"},
		{"password not UTF-8", "user", "pen\xffcil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSCRAMSHA256(tc.user, tc.password)
			_, err := s.Start(context.Background())
			if !errors.Is(err, ErrSCRAMCredentials) {
				t.Fatalf("Start: %v, want ErrSCRAMCredentials", err)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}

// The password is prepared with PRECIS OpaqueString: its decomposed and
// composed forms, and a non-ASCII space and ASCII space, give one proof.
func TestSCRAMPasswordPreparation(t *testing.T) {
	proof := func(password string) string {
		t.Helper()
		s := NewSCRAMSHA256("user", password)
		s.fixedNonce = rfc7677Nonce
		if _, err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		final, err := s.Continue(context.Background(), []byte(rfc7677ServerFirst))
		if err != nil {
			t.Fatal(err)
		}
		return string(final)
	}
	if proof("caf\u00e9") != proof("cafe\u0301") {
		t.Error("NFC and NFD forms of a password give different proofs")
	}
	if proof("a\u00a0b") != proof("a b") {
		t.Error("no-break space and space give different proofs")
	}
	if proof("pencil") != rfc7677ClientFinal {
		t.Error("ASCII password changed by preparation")
	}
}

// started returns the RFC 7677 client after Start.
func started(t *testing.T) *SCRAM {
	t.Helper()
	s := rfc7677Client()
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSCRAMBadServerFirst(t *testing.T) {
	const salt, count = "s=W22ZaJ0SNY7soEsUEjb6gQ==", "i=4096"
	const nonce = "r=rOprNGfwEbeRWgbNEkqO%hvY"
	var serverError *SCRAMServerError
	for _, tc := range []struct {
		name string
		msg  string
		want error
	}{
		{"empty", "", ErrSCRAMMalformed},
		{"not UTF-8", nonce + "\xff," + salt + "," + count, ErrSCRAMMalformed},
		{"nonce not ours", "r=XOprNGfwEbeRWgbNEkqO%hvY," + salt + "," + count, ErrSCRAMNonce},
		{"nonce a prefix of ours", "r=rOprNGfw," + salt + "," + count, ErrSCRAMNonce},
		{"nonce not printable", nonce + "\x7f," + salt + "," + count, ErrSCRAMMalformed},
		{"nonce with space", nonce + " x," + salt + "," + count, ErrSCRAMMalformed},
		{"salt not base64", nonce + ",s=W22ZaJ0SNY7soEsU!jb6gQ==," + count, ErrSCRAMMalformed},
		{"salt without padding", nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ," + count, ErrSCRAMMalformed},
		{"salt empty", nonce + ",s=," + count, ErrSCRAMMalformed},
		{"iterations below 4096", nonce + "," + salt + ",i=4095", ErrSCRAMIterations},
		{"iterations 1", nonce + "," + salt + ",i=1", ErrSCRAMIterations},
		{"iterations above 1000000", nonce + "," + salt + ",i=1000001", ErrSCRAMIterations},
		{"iterations overflow int64", nonce + "," + salt + ",i=99999999999999999999999", ErrSCRAMIterations},
		{"iterations zero", nonce + "," + salt + ",i=0", ErrSCRAMMalformed},
		{"iterations leading zero", nonce + "," + salt + ",i=04096", ErrSCRAMMalformed},
		{"iterations negative", nonce + "," + salt + ",i=-4096", ErrSCRAMMalformed},
		{"iterations signed", nonce + "," + salt + ",i=+4096", ErrSCRAMMalformed},
		{"iterations empty", nonce + "," + salt + ",i=", ErrSCRAMMalformed},
		{"iterations not a number", nonce + "," + salt + ",i=4096x", ErrSCRAMMalformed},
		{"iterations missing", nonce + "," + salt, ErrSCRAMMalformed},
		{"salt missing", nonce + "," + count, ErrSCRAMMalformed},
		{"wrong order", salt + "," + nonce + "," + count, ErrSCRAMMalformed},
		{"not attribute=value", nonce + "," + salt + "," + count + ",junk", ErrSCRAMMalformed},
		{"empty attribute", nonce + ",," + salt + "," + count, ErrSCRAMMalformed},
		{"attribute name not a letter", nonce + "," + salt + "," + count + ",1=x", ErrSCRAMMalformed},
		{"mandatory extension", "m=something," + nonce + "," + salt + "," + count, ErrSCRAMExtension},
		{"server error", "e=unknown-user", serverError},
		{"server-final instead", rfc7677ServerFinal, ErrSCRAMMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := started(t)
			out, err := s.Continue(context.Background(), []byte(tc.msg))
			if out != nil {
				t.Errorf("Continue returned data %q with its error", out)
			}
			if tc.want == serverError {
				if !errors.As(err, &serverError) || serverError.Value != "unknown-user" {
					t.Fatalf("Continue: %v, want server error unknown-user", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("Continue: %v, want %v", err, tc.want)
			}
			// The exchange is over: a retry needs Start.
			if _, err := s.Continue(context.Background(), []byte(rfc7677ServerFirst)); !errors.Is(err, ErrSCRAMOutOfOrder) {
				t.Errorf("Continue after a failure: %v, want ErrSCRAMOutOfOrder", err)
			}
		})
	}
}

// Unknown attributes after the iteration count are extensions, which RFC
// 5802 section 7 says to ignore; so is an empty server part of the nonce,
// which the grammar allows.
func TestSCRAMServerFirstAccepted(t *testing.T) {
	s := started(t)
	final, err := s.Continue(context.Background(), []byte(rfc7677ServerFirst+",x=future,y="))
	if err != nil {
		t.Fatalf("extensions: %v", err)
	}
	if !strings.HasPrefix(string(final), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=") {
		t.Errorf("client-final = %q", final)
	}

	s = started(t)
	if _, err := s.Continue(context.Background(), []byte("r="+rfc7677Nonce+",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err != nil {
		t.Errorf("no server nonce part: %v", err)
	}
}

// The bounds themselves are accepted. (Checked without PBKDF2: a million
// iterations take seconds under the race detector.)
func TestSCRAMIterationBounds(t *testing.T) {
	for text, want := range map[string]int{"4096": 4096, "10000": 10000, "1000000": 1000000} {
		if got, err := scramIterations(text); err != nil || got != want {
			t.Errorf("scramIterations(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
}

// proved returns the RFC 7677 client after Continue.
func proved(t *testing.T) *SCRAM {
	t.Helper()
	s := started(t)
	if _, err := s.Continue(context.Background(), []byte(rfc7677ServerFirst)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSCRAMBadServerFinal(t *testing.T) {
	var serverError *SCRAMServerError
	for _, tc := range []struct {
		name string
		msg  string
		want error
	}{
		{"wrong signature", "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", ErrSCRAMServerSignature},
		{"signature without padding", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", ErrSCRAMMalformed},
		{"truncated signature", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5n", ErrSCRAMServerSignature},
		{"empty signature", "v=", ErrSCRAMServerSignature},
		{"signature not base64", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4!", ErrSCRAMMalformed},
		{"no data", "", ErrSCRAMMalformed},
		{"another attribute", "r=" + rfc7677Nonce, ErrSCRAMMalformed},
		{"server error", "e=invalid-proof", serverError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := proved(t)
			err := s.Finish(context.Background(), []byte(tc.msg))
			if tc.want == serverError {
				if !errors.As(err, &serverError) || serverError.Value != "invalid-proof" {
					t.Fatalf("Finish: %v, want server error invalid-proof", err)
				}
				if !strings.Contains(err.Error(), "invalid-proof") {
					t.Errorf("error %q does not name the server's reason", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("Finish: %v, want %v", err, tc.want)
			}
			if err := s.Finish(context.Background(), []byte(rfc7677ServerFinal)); !errors.Is(err, ErrSCRAMOutOfOrder) {
				t.Errorf("Finish after a failure: %v, want ErrSCRAMOutOfOrder", err)
			}
		})
	}

	// Extensions after the verifier are ignored.
	s := proved(t)
	if err := s.Finish(context.Background(), []byte(rfc7677ServerFinal+",x=future")); err != nil {
		t.Errorf("verifier with an extension: %v", err)
	}
}

func TestSCRAMOutOfOrder(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func(t *testing.T, s *SCRAM) error
	}{
		{"Continue before Start", func(t *testing.T, s *SCRAM) error {
			_, err := s.Continue(ctx, []byte(rfc7677ServerFirst))
			return err
		}},
		{"Finish before Start", func(t *testing.T, s *SCRAM) error {
			return s.Finish(ctx, []byte(rfc7677ServerFinal))
		}},
		{"Finish before Continue", func(t *testing.T, s *SCRAM) error {
			if _, err := s.Start(ctx); err != nil {
				return err
			}
			return s.Finish(ctx, []byte(rfc7677ServerFinal))
		}},
		{"two challenges", func(t *testing.T, s *SCRAM) error {
			if _, err := s.Start(ctx); err != nil {
				return err
			}
			if _, err := s.Continue(ctx, []byte(rfc7677ServerFirst)); err != nil {
				return err
			}
			_, err := s.Continue(ctx, []byte(rfc7677ServerFirst))
			return err
		}},
		{"Continue after Finish", func(t *testing.T, s *SCRAM) error {
			rfc7677Exchange(t, s)
			_, err := s.Continue(ctx, []byte(rfc7677ServerFirst))
			return err
		}},
		{"Finish twice", func(t *testing.T, s *SCRAM) error {
			rfc7677Exchange(t, s)
			return s.Finish(ctx, []byte(rfc7677ServerFinal))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rfc7677Client()
			if err := tc.call(t, s); !errors.Is(err, ErrSCRAMOutOfOrder) {
				t.Fatalf("got %v, want ErrSCRAMOutOfOrder", err)
			}
			// Start always recovers.
			rfc7677Exchange(t, s)
		})
	}
}

func TestSCRAMContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := rfc7677Client()
	if _, err := s.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v, want context.Canceled", err)
	}
	s = started(t)
	if _, err := s.Continue(ctx, []byte(rfc7677ServerFirst)); !errors.Is(err, context.Canceled) {
		t.Errorf("Continue: %v, want context.Canceled", err)
	}
}

// A logged Authenticator must not show the password, whatever the verb.
func TestSCRAMFormatHidesPassword(t *testing.T) {
	s := NewSCRAMSHA256("user", "hunter2-secret")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(verb, s); strings.Contains(got, "hunter2-secret") {
			t.Errorf("%s prints the password: %s", verb, got)
		}
		opts := struct{ Authenticator Authenticator }{s}
		if got := fmt.Sprintf(verb, opts); strings.Contains(got, "hunter2-secret") {
			t.Errorf("%s of a struct holding it prints the password: %s", verb, got)
		}
	}
}

// A hostile server must not be able to make the client panic, whatever it
// sends at either step.
func FuzzSCRAMServerMessages(f *testing.F) {
	f.Add([]byte(rfc7677ServerFirst), []byte(rfc7677ServerFinal))
	f.Add([]byte("m=x,"+rfc7677ServerFirst), []byte("e=other-error"))
	f.Add([]byte("r="+rfc7677Nonce+",s=,i=4096"), []byte("v="))
	f.Add([]byte(","), []byte(","))
	f.Add([]byte("r="+rfc7677Nonce+"x,s=AA==,i=99999999999999999999"), []byte("v=,v="))
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		s := rfc7677Client()
		ctx := context.Background()
		if _, err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		final, err := s.Continue(ctx, serverFirst)
		if err != nil {
			if final != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		_ = s.Finish(ctx, serverFinal)
	})
}
