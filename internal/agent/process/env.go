package process

import (
	"errors"
	"maps"
	"slices"
	"strings"
)

// SetEnv sets environment variables every process started from now on
// gets (after the configured base environment, before the request's own).
// It replaces what an earlier SetEnv set.
func (s *Service) SetEnv(vars map[string]string) error {
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v := vars[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return errors.New("invalid environment variable " + k)
		}
		env = append(env, k+"="+v)
	}
	s.mu.Lock()
	s.env = env
	s.mu.Unlock()
	return nil
}

// baseEnv is the environment a new process starts from.
func (s *Service) baseEnv() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clone(s.cfg.Env), s.env...)
}
