package cli

import (
	"errors"
	"fmt"
	"strings"
)

// errUnterminatedQuote is returned by splitArgv for an unclosed quote.
var errUnterminatedQuote = errors.New("unterminated quote")

// splitArgv splits a command line into argv the way a POSIX shell splits
// words, and does nothing else: no variables, globs, pipes or
// redirections; the result is run as argv, never through a shell.
//
//   - Unquoted blanks (space, tab, newline) separate words.
//   - 'single quotes' keep everything inside literally.
//   - "double quotes" keep everything literally except \" and \\.
//   - Outside quotes a backslash escapes a blank, a quote or a backslash;
//     before any other character it is kept, so C:\tools\setup.exe stays
//     as written. Write \\server\share as '\\server\share'.
//   - A pair of quotes with nothing inside ("") makes an empty argument.
func splitArgv(s string) ([]string, error) {
	var (
		argv   []string
		word   strings.Builder
		inWord bool // word holds an argument, maybe empty ("")
		quote  rune // 0, '\'' or '"'
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		next := rune(-1)
		if i+1 < len(rs) {
			next = rs[i+1]
		}
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\' && (next == '"' || next == '\\'):
				word.WriteRune(next)
				i++
			default:
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case isBlank(r):
			if inWord {
				argv = append(argv, word.String())
				word.Reset()
				inWord = false
			}
		case r == '\\' && (isBlank(next) || next == '\'' || next == '"' || next == '\\'):
			word.WriteRune(next)
			inWord = true
			i++
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w %c in %q: close it", errUnterminatedQuote, quote, s)
	}
	if inWord {
		argv = append(argv, word.String())
	}
	return argv, nil
}

// quoteArgv is the inverse of splitArgv: splitArgv(quoteArgv(a)) == a.
func quoteArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = quoteArg(a)
	}
	return strings.Join(parts, " ")
}

func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\n\r'\"\\") {
		return a
	}
	// Inside single quotes nothing is special; a ' closes, is written
	// escaped, and reopens.
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }
