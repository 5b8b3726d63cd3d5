package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
)

// Mask is what a secret in driver_info or instance_info reads as.
const Mask = "******"

// secretKeys are the key fragments that make a driver_info or
// instance_info value a secret: oslo.utils' _SANITIZE_KEYS, which Ironic's
// API masks with (strutils.mask_dict_password). A key is a secret when its
// lower-cased name contains one of them; "key" alone is not one (Ironic
// shows deploy_key).
var secretKeys = []string{"adminpass", "admin_pass", "password", "admin_password", "auth_token", "new_pass",
	"auth_password", "secret_uuid", "secret", "sys_pswd", "token", "configdrive", "chappassword", "encrypted_key",
	"private_key", "fernetkey", "sslkey", "passphrase", "cephclusterfsid", "octaviaheartbeatkey", "rabbitcookie",
	"cephmanilaclientkey", "pacemakerremoteauthkey", "designaterndckey", "cephadminkey", "heatauthencryptionkey",
	"cephclientkey", "keystonecredential", "barbicansimplecryptokek", "cephrgwkey", "swifthashsuffix",
	"migrationsshkey", "cephmdskey", "cephmonkey"}

// isSecret reports whether a driver_info or instance_info key, at any
// depth, holds a secret.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// masked copies m with every secret replaced by Mask, at any depth: in
// nested objects and in lists. A secret key's whole value is masked
// whatever its type (Ironic would show the inside of an object under one).
func masked(m map[string]any) map[string]any {
	out, _ := rewriteSecrets(m, func(any) any { return Mask }).(map[string]any)
	if out == nil {
		return map[string]any{}
	}
	return out
}

// rewriteSecrets copies v with every secret value replaced by what with
// returns for it.
func rewriteSecrets(v any, with func(secret any) any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if isSecret(k) {
				out[k] = with(e)
				continue
			}
			out[k] = rewriteSecrets(e, with)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = rewriteSecrets(e, with)
		}
		return out
	}
	return v
}

// sealer lets a JSON Patch work on the document a client sees, so that no
// operation can read a secret: seal replaces each secret with a one-time
// token (the mask followed by a random nonce and a number) before the
// patch, and unseal puts each back afterwards — only where it was. A token
// found anywhere else means the patch copied or moved a secret, and is
// refused; a test op compares with the token, so it cannot confirm a
// guess. A client that sends the mask back where a secret was keeps it.
type sealer struct {
	nonce   string
	secrets []sealed
	byToken map[string]int // token → index in secrets
	byPath  map[string]int // JSON pointer → index in secrets
	// unsealed counts the tokens unseal put back.
	unsealed int
}

// sealed is one secret taken out of the document: where, and its value.
type sealed struct {
	path  string
	value any
}

func newSealer() *sealer {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return &sealer{nonce: hex.EncodeToString(b[:]), byToken: map[string]int{}, byPath: map[string]int{}}
}

// pointerEscaper escapes a key as a JSON Pointer (RFC 6901) token.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// seal returns a copy of m, the field at pointer path, with tokens in place
// of its secrets.
func (s *sealer) seal(m map[string]any, path string) map[string]any {
	out, _ := s.sealValue(m, path).(map[string]any)
	return out
}

func (s *sealer) sealValue(v any, path string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p := path + "/" + pointerEscaper.Replace(k)
			if isSecret(k) {
				token := Mask + s.nonce + "." + strconv.Itoa(len(s.secrets))
				s.byToken[token], s.byPath[p] = len(s.secrets), len(s.secrets)
				s.secrets = append(s.secrets, sealed{path: p, value: e})
				out[k] = token
				continue
			}
			out[k] = s.sealValue(e, p)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.sealValue(e, path+"/"+strconv.Itoa(i))
		}
		return out
	}
	return v
}

// unseal puts the secrets back into m, the patched field at pointer path:
// each token where it was taken from, and the secret that was at a path
// where the client sent the mask.
func (s *sealer) unseal(m map[string]any, path string) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	out, err := s.unsealValue(m, path, false)
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}

func (s *sealer) unsealValue(v any, path string, inList bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			nv, err := s.unsealValue(e, path+"/"+pointerEscaper.Replace(k), inList)
			if err != nil {
				return nil, err
			}
			x[k] = nv
		}
	case []any:
		for i, e := range x {
			nv, err := s.unsealValue(e, path+"/"+strconv.Itoa(i), true)
			if err != nil {
				return nil, err
			}
			x[i] = nv
		}
	case string:
		if i, ok := s.byToken[x]; ok {
			if s.secrets[i].path != path {
				return nil, badRequest("A JSON Patch may not copy or move a secret (a value shown as %s): %s would receive the one of %s.",
					Mask, path, s.secrets[i].path)
			}
			s.unsealed++
			return s.secrets[i].value, nil
		}
		if x != Mask {
			break
		}
		i, ok := s.byPath[path]
		switch {
		case !ok:
			return nil, badRequest("%s: %s stands for a secret, and there was none there to keep; send the value itself.", path, Mask)
		case inList:
			return nil, badRequest("%s: %s inside a list cannot be matched to the secret it stood for; send the value itself.", path, Mask)
		}
		return s.secrets[i].value, nil
	}
	return v, nil
}

// leaked reports whether doc, the patched document, held more tokens than
// unseal put back: a secret copied or moved out of driver_info and
// instance_info.
func (s *sealer) leaked(doc []byte) bool {
	return bytes.Count(doc, []byte(s.nonce)) > s.unsealed
}
