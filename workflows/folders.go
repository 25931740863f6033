package workflows

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Folder list bounds: a connection names 1 to MaxFolders root folders, each
// name at most MaxFolderName characters (Exchange bounds display names at
// 255; Graph folder IDs are shorter).
const (
	MaxFolders    = 50
	MaxFolderName = 255
)

// FolderError is a folder list refused by ValidateFolders; its message is a
// sentence naming the bad item, which the API shows as it is.
type FolderError struct{ msg string }

func (e *FolderError) Error() string { return e.msg }

func folderErrorf(format string, args ...any) *FolderError {
	return &FolderError{fmt.Sprintf(format, args...)}
}

// ValidateFolders checks a folder list as settings and resyncs name
// folders: 1 to MaxFolders names, none twice (case does not count), each
// one a folder name (see ValidateFolderName). The API and the workflow's
// update validators share it, so neither takes what the other refuses.
func ValidateFolders(folders []string) error {
	return validateFolders(folders, false)
}

// ValidateResyncFolders is ValidateFolders for a resync, which may also
// name every folder as "*".
func ValidateResyncFolders(folders []string) error {
	return validateFolders(folders, true)
}

func validateFolders(folders []string, star bool) error {
	switch {
	case folders == nil:
		return folderErrorf("folders must be a list of 1 to %d folder names, not null", MaxFolders)
	case len(folders) == 0:
		return folderErrorf("folders must name at least one folder; the list is empty")
	case len(folders) > MaxFolders:
		return folderErrorf("folders must name at most %d folders, not %d", MaxFolders, len(folders))
	}
	seen := make(map[string]int, len(folders))
	for i, f := range folders {
		if !(star && f == "*") {
			if err := validateFolderName(i, f); err != nil {
				return err
			}
		}
		key := strings.ToLower(f)
		if j, ok := seen[key]; ok {
			return folderErrorf("folders[%d] %q names the same folder as folders[%d]", i, f, j)
		}
		seen[key] = i
	}
	return nil
}

// ValidateFolderName checks one folder name as Graph resolves it, a path
// segment of /mailFolders/{name}: a well-known name (inbox, sentitems,
// archive, ...), a folder ID, or a display name of a synced folder. It is
// valid UTF-8 (without U+FFFD) of 1 to MaxFolderName characters, with no control or
// invisible format characters, no path separator ('/' or '\'), and is not
// "." or "..".
func ValidateFolderName(f string) error { return validateFolderName(-1, f) }

func validateFolderName(i int, f string) error {
	at := "the folder name"
	if i >= 0 {
		at = fmt.Sprintf("folders[%d]", i)
	}
	switch {
	case f == "":
		return folderErrorf("%s is empty", at)
	case !utf8.ValidString(f) || strings.ContainsRune(f, utf8.RuneError):
		// U+FFFD is what JSON decoders leave of invalid UTF-8 and lone
		// surrogates; no folder name outlookd resolves holds it.
		return folderErrorf("%s %q is not valid UTF-8", at, f)
	case utf8.RuneCountInString(f) > MaxFolderName:
		return folderErrorf("%s is %d characters long; a folder name has at most %d", at, utf8.RuneCountInString(f), MaxFolderName)
	case strings.ContainsFunc(f, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return folderErrorf("%s %q holds a control character", at, f)
	case strings.ContainsAny(f, `/\`) || f == "." || f == "..":
		return folderErrorf("%s %q is a path; name a folder by its well-known name (such as inbox), ID or display name", at, f)
	case f == "*":
		return folderErrorf("%s \"*\" names no folder; list the folders to sync", at)
	case strings.TrimSpace(f) != f:
		return folderErrorf("%s %q starts or ends with a space", at, f)
	}
	return nil
}
