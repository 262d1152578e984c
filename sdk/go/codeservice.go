package soulbox

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1/soulboxv1connect"
)

// CodeService returns a client of the daemon's soulbox.v1.CodeService
// (Execute, Judge, JudgeBatch; api/proto/soulbox/v1/code.proto), the
// gRPC counterpart of ExecuteCode, Judge and JudgeBatch: Execute streams
// typed events (compile report, output chunks, artifacts, result) and
// errors carry gRPC codes (connect.CodeOf). Every call sends the Client's
// API key.
//
// Without options it speaks the Connect protocol, which works over the
// Client's HTTP client as it is. With connect.WithGRPC() it speaks gRPC,
// which needs HTTP/2: an https:// daemon URL, or, for http://, an HTTP
// client that speaks HTTP/2 without TLS (h2c) given with WithHTTPClient:
//
//	var p http.Protocols
//	p.SetUnencryptedHTTP2(true)
//	hc := &http.Client{Transport: &http.Transport{Protocols: &p}}
//
// The client is safe for concurrent use and needs no closing.
func (c *Client) CodeService(opts ...connect.ClientOption) soulboxv1connect.CodeServiceClient {
	opts = append([]connect.ClientOption{connect.WithInterceptors(apiKeyHeader(c.apiKey))}, opts...)
	return soulboxv1connect.NewCodeServiceClient(c.hc, c.baseURL.String(), opts...)
}

// apiKeyHeader adds the API key to every call a client makes.
type apiKeyHeader string

func (k apiKeyHeader) set(h http.Header) {
	if k != "" {
		h.Set("X-API-Key", string(k))
	}
}

func (k apiKeyHeader) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			k.set(req.Header())
		}
		return next(ctx, req)
	}
}

func (k apiKeyHeader) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		k.set(conn.RequestHeader())
		return conn
	}
}

func (k apiKeyHeader) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
