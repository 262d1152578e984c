package soulbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	soulboxv1 "github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1"
)

func Example() {
	ctx := context.Background()
	client, err := soulbox.NewClient() // SOULBOX_URL, SOULBOX_API_KEY
	if err != nil {
		log.Fatal(err)
	}
	sbx, err := client.Create(ctx, soulbox.CreateOptions{
		Timeout: 10 * time.Minute,
		Limits:  soulbox.Limits{MemoryMB: 512, CPUs: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	res, err := sbx.Commands.Run(ctx, "echo hello from $(hostname)")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}

func ExampleCommands_Run_streaming() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	sbx, err := client.Connect(ctx, "sandbox-id")
	if err != nil {
		log.Fatal(err)
	}
	_, err = sbx.Commands.Run(ctx, "for i in 1 2 3; do echo $i; sleep 1; done; exit 3",
		soulbox.WithOnStdout(func(b []byte) { os.Stdout.Write(b) }),
		soulbox.WithOnStderr(func(b []byte) { os.Stderr.Write(b) }),
		soulbox.WithTimeout(time.Minute),
		soulbox.WithoutCapture(),
	)
	var exit *soulbox.CommandExitError
	if errors.As(err, &exit) {
		fmt.Println("exit code", exit.ExitCode())
	}
}

func ExampleCommands_Start() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	sbx, _ := client.Connect(ctx, "sandbox-id")

	h, err := sbx.Commands.Start(ctx, "wc -l", soulbox.WithStdin())
	if err != nil {
		log.Fatal(err)
	}
	h.SendStdin(ctx, []byte("one\ntwo\n"))
	h.CloseStdin(ctx)
	res, err := h.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}

func ExampleFiles_Write() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	sbx, _ := client.Connect(ctx, "sandbox-id")

	// Streamed: the file is never held in memory as a whole.
	f, err := os.Open("dataset.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := sbx.Files.Write(ctx, "/home/user/dataset.csv", f); err != nil {
		log.Fatal(err)
	}
	entries, _ := sbx.Files.List(ctx, "/home/user", 1)
	for _, e := range entries {
		fmt.Println(e.Type, e.Path, e.Size)
	}
}

func ExampleFiles_Watch() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, _ := soulbox.NewClient()
	sbx, _ := client.Connect(ctx, "sandbox-id")

	w, err := sbx.Files.Watch(ctx, "/home/user", true)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for ev := range w.Events() {
		fmt.Println(ev.Type, ev.Name)
	}
}

func ExamplePTY_Create() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	sbx, _ := client.Connect(ctx, "sandbox-id")

	term, err := sbx.PTY.Create(ctx, soulbox.PTYOptions{
		Cols: 120, Rows: 40,
		OnData: func(b []byte) { os.Stdout.Write(b) },
	})
	if err != nil {
		log.Fatal(err)
	}
	term.SendInput(ctx, []byte("ls -la\nexit\n"))
	term.Wait(ctx)
}

func ExampleClient_ListAll() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	opts := soulbox.ListOptions{Metadata: map[string]string{"owner": "ci"}, States: []soulbox.State{soulbox.StateRunning}}
	for info, err := range client.ListAll(ctx, opts) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(info.ID, info.State, info.EndAt.Format(time.RFC3339))
	}
}

func ExampleSandbox_DownloadURL() {
	ctx := context.Background()
	client, _ := soulbox.NewClient()
	sbx, _ := client.Connect(ctx, "sandbox-id")
	u := sbx.DownloadURL("/home/user/report.pdf", soulbox.URLOptions{Expires: 10 * time.Minute})
	fmt.Println(strings.Contains(u, "signature="))
}

// Execute over gRPC: output arrives as typed events while the program
// runs; the result is the stream's last event.
func ExampleClient_CodeService() {
	ctx := context.Background()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // gRPC over http:// needs HTTP/2 without TLS
	client, err := soulbox.NewClient(soulbox.WithHTTPClient(&http.Client{Transport: &http.Transport{Protocols: &p}}))
	if err != nil {
		log.Fatal(err)
	}
	code := client.CodeService(connect.WithGRPC())
	stream, err := code.Execute(ctx, connect.NewRequest(&soulboxv1.ExecuteRequest{
		SandboxId: "sandbox-id",
		Language:  "python",
		Code:      "print(input()[::-1])",
		Stdin:     []byte("olleh\n"),
		Timeout:   durationpb.New(10 * time.Second),
	}))
	if err != nil {
		log.Fatal(err)
	}
	for stream.Receive() {
		switch ev := stream.Msg().Event.(type) {
		case *soulboxv1.ExecuteEvent_Stdout:
			os.Stdout.Write(ev.Stdout)
		case *soulboxv1.ExecuteEvent_Result:
			fmt.Println("status", ev.Result.Status, "exit code", ev.Result.ExitCode)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(connect.CodeOf(err), err) // e.g. not_found, invalid_argument
	}
}
