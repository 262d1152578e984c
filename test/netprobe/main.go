// Command netprobe is a small static network tool run inside sandboxes
// by the network tests:
//
//	netprobe serve PORT     HTTP on 0.0.0.0:PORT: "/" says hello, "/ws" echoes WebSocket messages
//	netprobe get URL        prints the status and body of a GET (exit 1 on a network error)
//	netprobe dial HOST:PORT prints "ok" if a TCP connection opens (exit 1 otherwise)
//	netprobe dialall A,B,.. prints "ADDR ok" or "ADDR error" per address ("gw:PORT" is the default gateway)
//	netprobe myaddr         prints the first non-loopback IPv4 address
//	netprobe resolveget NAME URL HOST
//	                        resolves NAME, then GETs URL with Host (and TLS SNI) HOST,
//	                        certificates unchecked; prints as get
//	netprobe echo PORT      raw TCP echo server on 0.0.0.0:PORT
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "myaddr" {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				fmt.Println(n.IP)
				return
			}
		}
		os.Exit(1)
	}
	if len(os.Args) == 5 && os.Args[1] == "resolveget" {
		if _, err := net.LookupHost(os.Args[2]); err != nil {
			fmt.Println("error: resolve:", err)
			os.Exit(1)
		}
		host := os.Args[4]
		c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true}, //nolint:gosec // a test probe
		}}
		req, err := http.NewRequest(http.MethodGet, os.Args[3], nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, b)
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "echo" {
		ln, err := net.Listen("tcp", "0.0.0.0:"+os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: netprobe serve PORT | get URL | dial HOST:PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "get":
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, b)
	case "dial":
		c, err := net.DialTimeout("tcp", os.Args[2], 3*time.Second)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		c.Close()
		fmt.Println("ok")
	case "dialall":
		for _, a := range strings.Split(os.Args[2], ",") {
			if p, ok := strings.CutPrefix(a, "gw:"); ok {
				a = net.JoinHostPort(gateway(), p)
			}
			c, err := net.DialTimeout("tcp", a, 2*time.Second)
			if err != nil {
				fmt.Println(a, "error")
				continue
			}
			c.Close()
			fmt.Println(a, "ok")
		}
	default:
		os.Exit(2)
	}
}

// gateway reads the default route's gateway from /proc/net/route.
func gateway() string {
	b, _ := os.ReadFile("/proc/net/route")
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			v, _ := strconv.ParseUint(f[2], 16, 32)
			return net.IPv4(byte(v), byte(v>>8), byte(v>>16), byte(v>>24)).String()
		}
	}
	return "0.0.0.0"
}

func serve(port string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from netprobe host=%s path=%s token=%q", r.Host, r.URL.Path, r.Header.Get("X-Access-Token")+r.Header.Get("E2b-Traffic-Access-Token"))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	http.Serve(ln, mux)
}
