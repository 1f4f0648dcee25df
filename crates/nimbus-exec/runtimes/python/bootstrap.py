# Nimbus managed Python runtime: the Lambda runtime loop and the Python handler contract.
#
# Launched as `python3.X -u bootstrap.py` with cwd = the task root and the standard Lambda
# environment. It imports the handler named by _HANDLER (`module.function`), then loops on the
# Runtime API: GET /next, call handler(event, context), POST /response or /error. Errors and log
# lines have the shapes AWS's own runtime (awslambdaric) produces. Standard library only; one
# keep-alive connection with TCP_NODELAY; imports on the hot path are kept minimal.

import _socket
import json
import os
import sys
import time

_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
_PREFIX = "/2018-06-01/runtime"


class _Headers(dict):
    """Response headers, looked up case-insensitively."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class _Response:
    __slots__ = ["status", "headers"]

    def __init__(self, status, headers):
        self.status = status
        self.headers = headers


class _Client:
    """One keep-alive HTTP/1.1 connection to the Runtime API, on the bare `_socket` module:
    `http.client` pulls in `ssl` and `email` and costs ~30 ms of every cold start. The Runtime
    API always sends Content-Length."""

    def __init__(self, api):
        host, _, port = api.rpartition(":")
        self.addr = (host, int(port))
        self.sock = None
        self.buf = b""

    def _connect(self):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        sock.connect(self.addr)
        self.sock, self.buf = sock, b""

    def _recv(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the Runtime API closed the connection")
        self.buf += chunk

    def _response(self):
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = _Headers()
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return _Response(status, headers), body

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = body or b""
        head = "%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (
            method, _PREFIX, path, self.addr[0], len(body))
        for key, value in (headers or {}).items():
            head += "%s: %s\r\n" % (key, value)
        data = head.encode("latin-1", "replace") + b"\r\n" + body
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(data)
                return self._response()
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                if attempt:
                    raise

    def next(self):
        return self.request("GET", "/invocation/next")

    def post(self, path, body, headers):
        self.request("POST", path, body, headers)


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id={0},cognito_identity_pool_id={1}])".format(
            self.cognito_identity_id, self.cognito_identity_pool_id
        )


class Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


def _make_identity(raw):
    identity = CognitoIdentity()
    identity.cognito_identity_id = raw.get("cognitoIdentityId") if raw else None
    identity.cognito_identity_pool_id = raw.get("cognitoIdentityPoolId") if raw else None
    return identity


def _make_client_context(raw):
    if raw is None:
        return None
    ctx = ClientContext()
    ctx.custom = raw.get("custom")
    ctx.env = raw.get("env")
    client = raw.get("client")
    if client is not None:
        c = Client()
        c.installation_id = client.get("installation_id")
        c.app_title = client.get("app_title")
        c.app_version_name = client.get("app_version_name")
        c.app_version_code = client.get("app_version_code")
        c.app_package_name = client.get("app_package_name")
        ctx.client = c
    else:
        ctx.client = None
    return ctx


class LambdaContext:
    """The `context` argument, with the attributes and methods of AWS's Python runtime."""

    def __init__(self, request_id, deadline_ms, invoked_arn, identity, client_context, tenant_id=None):
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_arn
        self.tenant_id = tenant_id
        self.identity = _make_identity(identity)
        self.client_context = _make_client_context(client_context)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id={0},log_group_name={1},log_stream_name={2},function_name={3},"
            "memory_limit_in_mb={4},function_version={5},invoked_function_arn={6},client_context={7},"
            "identity={8}])".format(
                self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
                self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
                self.client_context, self.identity,
            )
        )


class FaultException(Exception):
    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


# --- logging -------------------------------------------------------------------------------

_current_request_id = None
_log_format = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "Text").upper()


class _LoggingHook:
    """A meta-path finder that lets `logging` import normally, then configures it."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader

        class _Loader:
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                _setup_logging()

        spec.loader = _Loader()
        return spec


def _setup_logging():
    """Configure the root logger like AWS's runtime (only when the user imports logging)."""
    import logging

    class _RequestIdFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""
            return True

    class _JsonFormatter(logging.Formatter):
        def format(self, record):
            out = {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + ".%03dZ" % record.msecs,
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
            }
            if _current_request_id:
                out["requestId"] = _current_request_id
            if record.exc_info:
                out["errorType"] = record.exc_info[0].__name__
                out["errorMessage"] = str(record.exc_info[1])
                out["stackTrace"] = self.formatException(record.exc_info).splitlines()
            return json.dumps(out, default=str)

    handler = logging.StreamHandler(sys.stdout)
    if _log_format == "JSON":
        handler.setFormatter(_JsonFormatter())
    else:
        fmt = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
        fmt.converter = time.gmtime
        handler.setFormatter(fmt)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    levels = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40, "FATAL": 50}
    if level and level.upper() in levels:
        root.setLevel(levels[level.upper()])
    elif _log_format == "JSON":
        root.setLevel(logging.INFO)


def _log_error(error_type, message, trace_lines):
    """Logs an error the way AWS's runtime does: `[ERROR] Type: message` then the traceback."""
    if _log_format == "JSON":
        out = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "level": "ERROR",
            "message": message,
            "errorType": error_type,
            "errorMessage": message,
            "stackTrace": trace_lines,
        }
        if _current_request_id:
            out["requestId"] = _current_request_id
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        lines = ["[ERROR] %s: %s" % (error_type, message), "Traceback (most recent call last):"]
        lines.extend(line.rstrip("\n") for line in trace_lines)
        # One log event, as AWS's runtime writes it: lines joined with carriage returns (the
        # platform turns them back into newlines inside the event).
        sys.stdout.write("\r".join(lines).replace("\n", "\r") + "\n")
    sys.stdout.flush()


# --- handler loading -------------------------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e))
        )
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        import importlib

        module = importlib.import_module(modname.replace("/", "."))
    except FaultException:
        raise
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, str(e))
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '{}': {}".format(modname, str(e)),
            trace,
        )
    except Exception as e:
        import traceback

        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR,
            "Unable to import module '{}': {}".format(modname, str(e)),
            traceback.format_list(traceback.extract_tb(e.__traceback__)),
        )
    fn = getattr(module, fname, None)
    if fn is None:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname)
        )
    return fn


def _user_frames(tb):
    """The traceback lines of user code (the runtime's own frames are dropped, as AWS does)."""
    import traceback

    frames = [f for f in traceback.extract_tb(tb) if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    return traceback.format_list(frames)


def _error_body(error_type, message, request_id, trace):
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id or "",
        "stackTrace": trace or [],
    }


def _to_json(value):
    import decimal

    def default(o):
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

    return json.dumps(value, default=default)


# --- main loop -------------------------------------------------------------------------------


def main():
    global _current_request_id
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    version = "%d.%d" % sys.version_info[:2]
    for p in reversed([task_root, "/opt/python/lib/python%s/site-packages" % version, "/opt/python"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    # The interpreter runs with -S: its site-packages are added here, after the function's own
    # code, without running the host's .pth files (which can import whole packages at every cold
    # start and have nothing to do with the function).
    import site

    for p in site.getsitepackages():
        if p not in sys.path and os.path.isdir(p):
            sys.path.append(p)
    # AWS's runtime configures the root logger; user code calling logging.info(...) expects
    # the Lambda format. Importing logging costs ~10 ms, so it is configured the moment the
    # function (or anything) imports it, and never for functions that do not.
    if "logging" in sys.modules:
        _setup_logging()
    else:
        sys.meta_path.insert(0, _LoggingHook())

    client = _Client(_API)
    handler_name = os.environ.get("_HANDLER", "")
    try:
        handler = _get_handler(handler_name)
    except FaultException as e:
        _log_error(e.exception_type, e.msg, e.trace or [])
        body = json.dumps(_error_body(e.exception_type, e.msg, "", e.trace))
        client.post("/init/error", body, {"Lambda-Runtime-Function-Error-Type": e.exception_type})
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - anything init raises is an init error
        trace = _user_frames(e.__traceback__)
        etype = type(e).__name__
        _log_error(etype, str(e), trace)
        body = json.dumps(_error_body(etype, str(e), "", trace))
        client.post("/init/error", body, {"Lambda-Runtime-Function-Error-Type": "Runtime.Unknown"})
        sys.exit(1)

    while True:
        resp, event_body = client.next()
        h = resp.headers
        request_id = h.get("Lambda-Runtime-Aws-Request-Id")
        _current_request_id = request_id
        trace_id = h.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            deadline = int(h.get("Lambda-Runtime-Deadline-Ms") or 0)
            cc = h.get("Lambda-Runtime-Client-Context")
            ci = h.get("Lambda-Runtime-Cognito-Identity")
            context = LambdaContext(
                request_id,
                deadline,
                h.get("Lambda-Runtime-Invoked-Function-Arn"),
                json.loads(ci) if ci else None,
                json.loads(cc) if cc else None,
                h.get("Lambda-Runtime-Aws-Tenant-Id"),
            )
        except Exception as e:  # noqa: BLE001
            _report(client, request_id, FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR,
                    "Unable to parse Client Context JSON: {}".format(e), [])
            continue
        try:
            event = json.loads(event_body) if event_body else {}
        except Exception as e:  # noqa: BLE001
            _report(client, request_id, FaultException.UNMARSHAL_ERROR,
                    "Unable to unmarshal input: {}".format(e), [])
            continue
        try:
            result = handler(event, context)
        except Exception as e:  # noqa: BLE001 - the handler's error goes to the caller
            _report(client, request_id, type(e).__name__, str(e), _user_frames(e.__traceback__))
            continue
        try:
            body = _to_json(result)
        except Exception as e:  # noqa: BLE001
            _report(client, request_id, FaultException.MARSHAL_ERROR,
                    "Unable to marshal response: {}".format(e), [])
            continue
        sys.stdout.flush()
        client.post("/invocation/%s/response" % request_id, body, {"Content-Type": "application/json"})


def _report(client, request_id, error_type, message, trace):
    _log_error(error_type, message, trace)
    body = json.dumps(_error_body(error_type, message, request_id, trace))
    client.post(
        "/invocation/%s/error" % request_id,
        body,
        {"Lambda-Runtime-Function-Error-Type": "Unhandled", "Content-Type": "application/json"},
    )


if __name__ == "__main__":
    # The bootstrap's own directory must not shadow user modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    main()
