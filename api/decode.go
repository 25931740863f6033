package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// maxRequestBody bounds every JSON request body.
const maxRequestBody = 64 << 10

// decodeError is a request body the API refuses, with its status, code and
// sentence.
type decodeError struct {
	status int
	code   string
	detail string
}

func (e *decodeError) Error() string { return e.detail }

// decodeJSON reads exactly one JSON object into v: the content type must
// be JSON, unknown fields, wrong types, trailing data and oversize bodies
// are refused with a sentence naming the problem.
func decodeJSON(contentType string, body io.Reader, v any) *decodeError {
	return decodeJSONUpTo(contentType, body, v, maxRequestBody)
}

// decodeJSONUpTo is decodeJSON for a body of up to limit bytes.
func decodeJSONUpTo(contentType string, body io.Reader, v any, limit int64) *decodeError {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &decodeError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the request body as application/json."}
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return &decodeError{http.StatusBadRequest, "invalid_json", "The request body could not be read."}
	}
	if derr := checkJSONText(raw); derr != nil {
		return derr
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return classifyDecode(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return classifyDecode(err)
		}
		return &decodeError{http.StatusBadRequest, "invalid_json", "The body holds more than one JSON value."}
	}
	return nil
}

// checkJSONText refuses a body whose text Postgres or Vault could not
// hold, before it is decoded (encoding/json would quietly turn invalid
// UTF-8 and lone surrogates into U+FFFD, and keep a NUL): bytes that are
// not UTF-8, a NUL (raw, or escaped as \u0000), and a \uD800-\uDFFF
// escape that is not half of a surrogate pair.
func checkJSONText(body []byte) *decodeError {
	if !utf8.Valid(body) {
		return &decodeError{http.StatusBadRequest, "invalid_encoding", "The body is not valid UTF-8."}
	}
	if bytes.IndexByte(body, 0) >= 0 {
		return nulInBody
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case b == '"':
			inString = !inString
		case b != '\\' || !inString || i+1 >= len(body):
		case body[i+1] != 'u':
			i++ // a one-character escape, such as \" or \\
		default:
			r, ok := hexRune(body, i+2)
			if !ok {
				continue // a syntax error the decoder names
			}
			i += 5
			switch {
			case r == 0:
				return nulInBody
			case r >= 0xDC00 && r <= 0xDFFF:
				return loneSurrogate
			case r >= 0xD800 && r <= 0xDBFF:
				if i+2 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
					return loneSurrogate
				}
				if low, ok := hexRune(body, i+3); !ok || low < 0xDC00 || low > 0xDFFF {
					return loneSurrogate
				}
				i += 6 // the pair's low half
			}
		}
	}
	return nil
}

var (
	nulInBody     = &decodeError{http.StatusBadRequest, "invalid_character", "The body holds a NUL character (\\u0000), which no field takes."}
	loneSurrogate = &decodeError{http.StatusBadRequest, "invalid_encoding", "The body holds a lone UTF-16 surrogate (such as \\ud800), which is not a character."}
)

// hexRune reads the four hex digits of a \u escape at body[at:].
func hexRune(body []byte, at int) (rune, bool) {
	if at+4 > len(body) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(body[at:at+4]), 16, 32)
	return rune(n), err == nil
}

func classifyDecode(err error) *decodeError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &decodeError{http.StatusBadRequest, "empty_body", "The request needs a JSON body."}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &syntax):
		return &decodeError{http.StatusBadRequest, "invalid_json", "The body is not valid JSON (or is larger than 64 KiB)."}
	case errors.As(err, &typ):
		field := strings.TrimPrefix(typ.Field, "settingsPatch.")
		if field == "" {
			return &decodeError{http.StatusBadRequest, "invalid_json", "The body must be a JSON object."}
		}
		return &decodeError{http.StatusBadRequest, "invalid_field", fmt.Sprintf("The field %q must be %s, not a JSON %s.", field, withArticle(typeName(typ.Type.Kind().String())), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &decodeError{http.StatusBadRequest, "unknown_field", "The body has the field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + ", which this request does not take."}
	}
	return &decodeError{http.StatusBadRequest, "invalid_json", "The body could not be read as JSON."}
}

// withArticle puts "a" or "an" before a type's name.
func withArticle(name string) string {
	if name != "" && strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

func typeName(kind string) string {
	switch kind {
	case "int", "int32", "int64", "float64":
		return "number"
	case "slice":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	case "bool":
		return "boolean"
	}
	return kind
}

// bind decodes the request body or answers the problem; it says whether to
// go on.
func bind(c *gin.Context, v any) bool { return bindUpTo(c, v, maxRequestBody) }

// bindUpTo is bind for a body of up to limit bytes (a send's, which
// carries attachments).
func bindUpTo(c *gin.Context, v any, limit int64) bool {
	tooLarge := fmt.Sprintf("The request body is larger than %s.", sizeText(limit))
	if c.Request.ContentLength > limit {
		problem(c, http.StatusRequestEntityTooLarge, "body_too_large", tooLarge)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	if err != nil {
		problem(c, http.StatusBadRequest, "invalid_json", "The request body could not be read.")
		return false
	}
	if int64(len(body)) > limit {
		problem(c, http.StatusRequestEntityTooLarge, "body_too_large", tooLarge)
		return false
	}
	if derr := decodeJSONUpTo(c.GetHeader("Content-Type"), bytes.NewReader(body), v, limit); derr != nil {
		problem(c, derr.status, derr.code, derr.detail)
		return false
	}
	return true
}

// sizeText writes a byte count in KiB or MiB.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}
