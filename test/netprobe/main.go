// Command netprobe is a small static network tool run inside sandboxes
// by the network tests:
//
//	netprobe serve PORT     HTTP on 0.0.0.0:PORT: "/" says hello, "/ws" echoes WebSocket messages
//	netprobe get URL        prints the status and body of a GET (exit 1 on a network error)
//	netprobe dial HOST:PORT prints "ok" if a TCP connection opens (exit 1 otherwise)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coder/websocket"
)

func main() {
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
	default:
		os.Exit(2)
	}
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
