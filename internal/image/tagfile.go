package image

import (
	"encoding/base64"
	"encoding/json"
)

// decodeTag decodes a tag file (tagEntry as json.Marshal writes it). A
// warm run reads one per image, most of it the manifest in base64, and
// encoding/json scans it twice (to check it, then to decode it) before
// decoding the base64: the file as archfit writes it — one object of plain
// strings under the field names — is read in one pass here, and anything
// else (escapes, other keys or spellings, non-ASCII, null) goes to
// encoding/json, so both accept and decode the same files.
func decodeTag(b []byte, e *tagEntry) error {
	if decodeTagFast(b, e) {
		return nil
	}
	*e = tagEntry{}
	return json.Unmarshal(b, e)
}

func decodeTagFast(b []byte, e *tagEntry) bool {
	var t tagEntry
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b) && set(e, t)
	}
	for {
		k0, k1, next, ok := plainString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		v0, v1, next, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return false
		}
		v := b[v0:v1]
		switch string(b[k0:k1]) {
		case "digest":
			t.Digest = string(v)
		case "mediaType":
			t.MediaType = string(v)
		case "seen":
			if t.Seen.UnmarshalJSON(b[v0-1:v1+1]) != nil { // with its quotes
				return false
			}
		case "manifest":
			m := make([]byte, base64.StdEncoding.DecodedLen(len(v)))
			n, err := base64.StdEncoding.Decode(m, v)
			if err != nil {
				return false
			}
			t.Manifest = m[:n]
		default:
			return false
		}
		i = skipSpace(b, next)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b) && set(e, t)
		default:
			return false
		}
	}
}

func set(e *tagEntry, t tagEntry) bool { *e = t; return true }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString finds the JSON string at b[i] if it is plain printable ASCII
// without escapes (whose bytes are its value): its content is b[start:end],
// and next follows its closing quote.
func plainString(b []byte, i int) (start, end, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return 0, 0, 0, false
		}
	}
	return 0, 0, 0, false
}
