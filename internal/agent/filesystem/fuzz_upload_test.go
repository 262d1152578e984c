package filesystem

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// FuzzUpload sends arbitrary multipart and octet-stream bodies (optionally
// gzip-encoded) with arbitrary paths to POST /files: the answer is 200 or
// a JSON error, and nothing is ever written outside the user's home.
func FuzzUpload(f *testing.F) {
	f.Add("multipart", "", "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--B--\r\n", false)
	f.Add("multipart", "sub/dir/x", "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../escape\"\r\n\r\nx\r\n--B--\r\n", false)
	f.Add("octet", "../../../etc/passwd", "data", true)
	f.Add("octet", "/tmp/../home/f", "data", false)
	f.Add("multipart", "", "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/abs\"\r\n\r\nx\r\n--B", false)
	e := newEnv(f, Config{UploadLimit: 1 << 20})
	f.Fuzz(func(t *testing.T, kind, path, body string, gz bool) {
		var b bytes.Buffer
		if gz {
			zw := gzip.NewWriter(&b)
			zw.Write([]byte(body))
			zw.Close()
		} else {
			b.WriteString(body)
		}
		q := "?username=user"
		if path != "" {
			q += "&path=" + url.QueryEscape(path)
		}
		req, err := http.NewRequest("POST", e.url+FilesPath+q, &b)
		if err != nil {
			return
		}
		if kind == "multipart" {
			req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		} else {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			var je struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if json.NewDecoder(resp.Body).Decode(&je) != nil || je.Code != resp.StatusCode || je.Message == "" {
				t.Fatalf("status %d without a JSON error body", resp.StatusCode)
			}
		}
		// The user may write only in its home (and world-writable places,
		// of which the test's base has none): the base holds the home only.
		ents, err := os.ReadDir(e.base)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "home" {
			var names []string
			for _, x := range ents {
				names = append(names, x.Name())
			}
			t.Fatalf("written outside the home: %s", strings.Join(names, ", "))
		}
	})
}
