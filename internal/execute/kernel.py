# SoulBox code-context kernel for Python. It runs as the sandbox's user;
# the daemon writes one JSON object a line to its stdin
#   {"type": "execute", "id": "...", "code": "...", "env": {name: value}}
# (env, optional, is set for this execution only)
# and reads one JSON object a line from its stdout:
#   {"id", "type": "stdout"|"stderr", "text"}
#   {"id", "type": "result", "data": {mime: value}, "main": bool}
#   {"id", "type": "error", "name", "value", "traceback"}
#   {"id", "type": "end", "execution_count"}
# Any other message is answered with its end line alone (the daemon sends
# {"type": "sync", "id"} to find where a re-attached kernel's output is).
# A SIGINT interrupts the running execution (KeyboardInterrupt).
import ast, base64, io, json, os, sys, threading, traceback

_proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
_input = os.fdopen(os.dup(0), "rb", buffering=0)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(2, 1)  # output of subprocesses goes to stderr
_lock = threading.Lock()
_cur = {"id": ""}


def _send(msg):
    if msg["type"] not in ("stdout", "stderr"):
        for st in _streams:  # what was printed before comes first
            st.flush()
    msg["id"] = _cur["id"]
    line = json.dumps(msg, default=str)
    with _lock:
        _proto.write(line + "\n")
        _proto.flush()


class _Stream(io.TextIOBase):
    """Sends whole lines (a partial line on flush, before other output,
    or past 64 KiB), as a line-buffered terminal would."""

    def __init__(self, name):
        self.name = name
        self.buf = ""

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            s = str(s)
        if not s:
            return 0
        self.buf += s
        i = self.buf.rfind("\n")
        if i >= 0 or len(self.buf) > 65536:
            n = i + 1 if i >= 0 else len(self.buf)
            text, self.buf = self.buf[:n], self.buf[n:]
            for st in _streams:
                if st is not self:
                    st.flush()
            _send({"type": self.name, "text": text})
        return len(s)

    def flush(self):
        if self.buf:
            text, self.buf = self.buf, ""
            _send({"type": self.name, "text": text})

    def isatty(self):
        return False


sys.stdout = _Stream("stdout")
sys.stderr = _Stream("stderr")
_streams = (sys.stdout, sys.stderr)
sys.stdin = io.StringIO("")

_ns = {"__name__": "__main__", "__builtins__": __builtins__}
_count = 0


def _data(value):
    d = {"text/plain": repr(value)}
    try:
        import pandas as pd  # noqa
        if isinstance(value, pd.DataFrame):
            d["text/html"] = value.to_html()
            d["application/json"] = json.loads(value.to_json(orient="split", date_format="iso"))
            return d
    except Exception:
        pass
    try:
        if "matplotlib" in sys.modules:
            from matplotlib.figure import Figure
            if isinstance(value, Figure):
                return _figure(value)
    except Exception:
        pass
    for meth, mime in (("_repr_html_", "text/html"), ("_repr_svg_", "image/svg+xml"),
                       ("_repr_markdown_", "text/markdown"), ("_repr_latex_", "text/latex")):
        f = getattr(value, meth, None)
        if callable(f):
            try:
                r = f()
                if isinstance(r, str):
                    d[mime] = r
            except Exception:
                pass
    f = getattr(value, "_repr_png_", None)
    if callable(f):
        try:
            r = f()
            if isinstance(r, bytes):
                d["image/png"] = base64.b64encode(r).decode()
        except Exception:
            pass
    return d


def _figure(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return {"text/plain": repr(fig), "image/png": base64.b64encode(buf.getvalue()).decode()}


def _figures():
    if "matplotlib.pyplot" not in sys.modules:
        return
    import matplotlib.pyplot as plt
    for num in plt.get_fignums():
        fig = plt.figure(num)
        try:
            _send({"type": "result", "data": _figure(fig), "main": False})
        except Exception as e:
            _send({"type": "stderr", "text": "soulbox: figure %s: %s\n" % (num, e)})
    plt.close("all")


def _error(e):
    tb = e.__traceback__
    # Drop the kernel's own frames.
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    if isinstance(e, SyntaxError):
        tb = None
    text = "".join(traceback.format_exception(type(e), e, tb))
    _send({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": text})


def _run(code):
    global _count
    _count += 1
    try:
        tree = ast.parse(code, "<cell>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), _ns)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), _ns)
            if value is not None:
                _ns["_"] = value
                _figures_first = "matplotlib.figure" in sys.modules
                if _figures_first:
                    from matplotlib.figure import Figure
                    if isinstance(value, Figure):
                        import matplotlib.pyplot as plt
                        plt.close(value)
                _send({"type": "result", "data": _data(value), "main": True})
        _figures()
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt, SystemExit too)
        try:
            _figures()
        except BaseException:
            pass
        _error(e)


def _set_env(env):
    saved = {}
    for k, v in (env or {}).items():
        saved[k] = os.environ.get(k)
        os.environ[k] = v
    return saved


def _restore_env(saved):
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def main():
    while True:
        try:
            line = _input.readline()
        except KeyboardInterrupt:
            continue
        if not line:
            return
        try:
            req = json.loads(line)
        except ValueError:
            continue
        _cur["id"] = str(req.get("id", ""))
        try:
            if req.get("type") == "execute":
                if req.get("cwd"):
                    os.chdir(req["cwd"])
                saved = {}
                try:
                    saved = _set_env(req.get("env"))
                    _run(req.get("code", ""))
                finally:
                    _restore_env(saved)
        except KeyboardInterrupt:
            pass
        except Exception as e:
            _error(e)
        finally:
            try:
                sys.stdout.flush()
                _send({"type": "end", "execution_count": _count})
            except KeyboardInterrupt:
                _send({"type": "end", "execution_count": _count})


main()
