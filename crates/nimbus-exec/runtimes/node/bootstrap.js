// Nimbus managed Node.js runtime: the Lambda runtime loop and the Node.js handler contract.
//
// Launched as `node bootstrap.js` with cwd = the task root and the standard Lambda environment.
// It loads the handler named by _HANDLER (`path/file.export[.nested]`, CommonJS or ES module),
// then loops on the Runtime API: GET /next, call the handler (async or callback style), POST
// /response or /error. Error payloads (`errorType`, `errorMessage`, `trace`) and console lines
// (`<time>\t<requestId>\t<LEVEL>\t<message>`) follow AWS's own Node.js runtime. Node's standard
// library only; one keep-alive connection with TCP_NODELAY, spoken to by a minimal HTTP/1.1 client.
"use strict";

const net = require("net");
const path = require("path");
const fs = require("fs");
const util = require("util");
const url = require("url");

const API = process.env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001";
const [HOST, PORT] = (() => {
  const i = API.lastIndexOf(":");
  return [API.slice(0, i), Number(API.slice(i + 1))];
})();
const PREFIX = "/2018-06-01/runtime";

// A minimal HTTP/1.1 client on one kept-alive socket: Node's `http` module costs more CPU per
// request than the handler of a small function does. Responses are read by Content-Length
// (or chunked, or to the end of the connection).
const CRLF2 = Buffer.from("\r\n\r\n");

function parseHead(text) {
  const lines = text.split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(":");
    if (c > 0) headers[lines[i].slice(0, c).trim().toLowerCase()] = lines[i].slice(c + 1).trim();
  }
  return { status, headers };
}

// Decodes a complete chunked body, or returns null while more bytes are needed.
function dechunk(buf) {
  const parts = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf("\r\n", at);
    if (eol < 0) return null;
    const size = parseInt(buf.subarray(at, eol).toString("latin1"), 16);
    if (Number.isNaN(size)) throw new Error("bad chunk from the Runtime API");
    if (size === 0) return buf.length >= eol + 4 ? Buffer.concat(parts) : null;
    if (buf.length < eol + 2 + size + 2) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function exchange(sock, payload) {
  return new Promise((resolve, reject) => {
    let buf = null;
    let head = null;
    const finish = (err, body) => {
      sock.removeListener("data", onData);
      sock.removeListener("error", onError);
      sock.removeListener("close", onClose);
      if (err) reject(err);
      else resolve({ status: head.status, headers: head.headers, body });
    };
    const tryComplete = () => {
      if (!head) {
        const i = buf.indexOf(CRLF2);
        if (i < 0) return;
        head = parseHead(buf.subarray(0, i).toString("latin1"));
        buf = buf.subarray(i + 4);
      }
      const te = head.headers["transfer-encoding"];
      const cl = head.headers["content-length"];
      if (te && te.toLowerCase().includes("chunked")) {
        const body = dechunk(buf);
        if (body) finish(null, body);
      } else if (cl !== undefined) {
        const n = Number(cl);
        if (buf.length >= n) finish(null, buf.subarray(0, n));
      } else if (head.status === 204 || head.status === 304) {
        finish(null, Buffer.alloc(0));
      }
    };
    const onData = (chunk) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      try {
        tryComplete();
      } catch (e) {
        sock.destroy();
        finish(e);
      }
    };
    const onError = (e) => finish(e);
    const onClose = () => {
      // A response without a length ends with the connection.
      if (head && head.headers["content-length"] === undefined && !head.headers["transfer-encoding"]) finish(null, buf || Buffer.alloc(0));
      else finish(new Error("the Runtime API closed the connection"));
    };
    sock.on("data", onData);
    sock.on("error", onError);
    sock.on("close", onClose);
    sock.write(payload);
  });
}

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port: PORT });
    s.setNoDelay(true);
    s.once("connect", () => {
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

let shared = null;
let busy = false;

async function request(method, p, body, headers) {
  let head = `${method} ${PREFIX}${p} HTTP/1.1\r\nHost: ${API}\r\n`;
  for (const [k, v] of Object.entries(headers || {})) head += `${k}: ${v}\r\n`;
  const payload = body === undefined ? Buffer.from(head + "\r\n", "latin1") : Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`, "latin1"), body]);
  // The shared connection, unless a request is already in flight on it (an unhandled rejection
  // reported while the loop waits for the next event): then a connection of its own.
  if (busy) {
    const own = await connect();
    try {
      return await exchange(own, payload);
    } finally {
      own.destroy();
    }
  }
  busy = true;
  try {
    if (shared === null || shared.destroyed) shared = await connect();
    const res = await exchange(shared, payload);
    if ((res.headers.connection || "").toLowerCase() === "close") {
      shared.destroy();
      shared = null;
    }
    return res;
  } catch (e) {
    if (shared) shared.destroy();
    shared = null;
    throw e;
  } finally {
    busy = false;
  }
}

function post(p, body, headers) {
  return request("POST", p, Buffer.from(body), headers);
}

// --- logging -----------------------------------------------------------------------------

let currentRequestId = undefined;
const LOG_FORMAT = (process.env.AWS_LAMBDA_LOG_FORMAT || "Text").toUpperCase();
const LEVELS = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
const minLevel = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || "TRACE").toUpperCase()] ?? 0;

function writeLine(text) {
  // One log event per call: embedded newlines become carriage returns, which the platform
  // turns back into newlines inside the event.
  process.stdout.write(text.replace(/\n/g, "\r") + "\n");
}

function logAt(level) {
  return (...args) => {
    if (LEVELS[level] < minLevel) return;
    const time = new Date().toISOString();
    if (LOG_FORMAT === "JSON") {
      const out = { timestamp: time, level, requestId: currentRequestId, message: util.format(...args) };
      writeLine(JSON.stringify(out));
    } else {
      writeLine(`${time}\t${currentRequestId}\t${level}\t${util.format(...args)}`);
    }
  };
}

console.log = logAt("INFO");
console.info = logAt("INFO");
console.warn = logAt("WARN");
console.error = logAt("ERROR");
console.debug = logAt("DEBUG");
console.trace = logAt("TRACE");
console.fatal = logAt("FATAL");

// --- errors ------------------------------------------------------------------------------

class UserCodeError extends Error {
  constructor(type, message, cause) {
    super(message);
    this.name = type;
    if (cause && cause.stack) this.stack = `${type}: ${message}\n${cause.stack.split("\n").slice(1).join("\n")}`;
  }
}

function errorPayload(err) {
  if (err instanceof Error) {
    const trace = typeof err.stack === "string" ? err.stack.split("\n") : [];
    return { errorType: err.name || "Error", errorMessage: err.message, trace };
  }
  // Non-Error values are reported as AWS's runtime does.
  let message;
  try {
    message = typeof err === "string" ? err : JSON.stringify(err);
  } catch (_) {
    message = String(err);
  }
  return { errorType: typeof err === "string" ? "string" : typeof err, errorMessage: message, trace: [] };
}

function logInvokeError(err) {
  const p = errorPayload(err);
  logAt("ERROR")("Invoke Error", "\t" + JSON.stringify({ errorType: p.errorType, errorMessage: p.errorMessage, stack: p.trace }));
}

// --- handler loading ---------------------------------------------------------------------

function nearestPackageType(dir) {
  let d = dir;
  for (;;) {
    const pj = path.join(d, "package.json");
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, "utf8")).type;
      } catch (_) {
        return undefined;
      }
    }
    const parent = path.dirname(d);
    if (parent === d) return undefined;
    d = parent;
  }
}

async function loadModule(root, moduleName) {
  const base = path.resolve(root, moduleName);
  const candidates = [
    [base + ".js", nearestPackageType(path.dirname(base)) === "module"],
    [base + ".mjs", true],
    [base + ".cjs", false],
    [base, false],
  ];
  for (const [file, esm] of candidates) {
    if (fs.existsSync(file) && fs.statSync(file).isFile()) {
      if (esm) return await import(url.pathToFileURL(file).href);
      return require(file);
    }
  }
  // Fall back to Node's resolution (packages in node_modules, directories with index.js).
  const resolved = require.resolve(moduleName.startsWith(".") ? moduleName : path.join(root, moduleName), {
    paths: [root],
  });
  return require(resolved);
}

async function loadHandler(handlerString) {
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  if (handlerString.includes("..")) {
    throw new UserCodeError("Runtime.MalformedHandlerName", "'" + handlerString + "' is not a valid handler name. Use absolute paths when specifying root directories in handler names.");
  }
  const dir = path.dirname(handlerString);
  const base = path.basename(handlerString);
  const m = base.match(/^([^.]*)\.(.*)$/);
  if (!m) {
    throw new UserCodeError("Runtime.MalformedHandlerName", `Bad handler ${handlerString}`);
  }
  const [, file, fnPath] = m;
  let mod;
  try {
    mod = await loadModule(path.resolve(root, dir), file);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new UserCodeError("Runtime.UserCodeSyntaxError", `${e.name}: ${e.message}`, e);
    }
    if (e && (e.code === "MODULE_NOT_FOUND" || e.code === "ERR_MODULE_NOT_FOUND")) {
      throw new UserCodeError("Runtime.ImportModuleError", `Error: Cannot find module '${file}'\nRequire stack:\n- ${__filename}`, e);
    }
    throw e;
  }
  let fn = mod;
  for (const part of fnPath.split(".")) {
    fn = fn == null ? undefined : fn[part];
  }
  if (typeof fn !== "function") {
    throw new UserCodeError("Runtime.HandlerNotFound", `${base} is undefined or not exported`);
  }
  return fn;
}

// --- invocation --------------------------------------------------------------------------

function makeContext(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  const parse = (v) => {
    if (!v) return undefined;
    return JSON.parse(v);
  };
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: parse(headers["lambda-runtime-cognito-identity"]),
    clientContext: parse(headers["lambda-runtime-client-context"]),
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
  return context;
}

function invokeHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(result);
    };
    context.done = done;
    context.succeed = (result) => done(null, result);
    context.fail = (err) => done(err === undefined || err === null ? new Error("handled") : err);
    try {
      const ret = handler(event, context, done);
      if (ret && typeof ret.then === "function") {
        ret.then((r) => done(null, r), (e) => done(e === undefined || e === null ? new Error(String(e)) : e));
      } else if (handler.length < 3) {
        // A synchronous handler without a callback: its return value is the result.
        done(null, ret);
      }
    } catch (e) {
      done(e);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER || "");
  } catch (e) {
    logInvokeError(e);
    const p = errorPayload(e);
    await post("/init/error", JSON.stringify(p), { "Lambda-Runtime-Function-Error-Type": p.errorType, "Content-Type": "application/json" });
    process.exit(1);
  }

  process.on("unhandledRejection", async (reason) => {
    const err = new UserCodeError("Runtime.UnhandledPromiseRejection", reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason), reason);
    logInvokeError(err);
    if (currentRequestId) {
      const p = errorPayload(err);
      try {
        await post(`/invocation/${currentRequestId}/error`, JSON.stringify(p), { "Lambda-Runtime-Function-Error-Type": p.errorType, "Content-Type": "application/json" });
      } catch (_) {}
    }
    process.exit(128);
  });

  for (;;) {
    const next = await request("GET", "/invocation/next");
    const headers = next.headers;
    const requestId = headers["lambda-runtime-aws-request-id"];
    currentRequestId = requestId;
    if (headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = headers["lambda-runtime-trace-id"];
    else delete process.env._X_AMZN_TRACE_ID;
    let event;
    let context;
    try {
      const text = next.body.toString("utf8");
      event = text.length ? JSON.parse(text) : {};
      context = makeContext(headers);
    } catch (e) {
      const p = { errorType: "Runtime.UnmarshalError", errorMessage: `Unable to parse event: ${e.message}`, trace: [] };
      await post(`/invocation/${requestId}/error`, JSON.stringify(p), { "Lambda-Runtime-Function-Error-Type": p.errorType, "Content-Type": "application/json" });
      continue;
    }
    let result;
    try {
      result = await invokeHandler(handler, event, context);
    } catch (e) {
      logInvokeError(e);
      const p = errorPayload(e);
      await post(`/invocation/${requestId}/error`, JSON.stringify(p), { "Lambda-Runtime-Function-Error-Type": "Unhandled", "Content-Type": "application/json" });
      continue;
    }
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (e) {
      const p = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body: ${e.message}`, trace: [] };
      await post(`/invocation/${requestId}/error`, JSON.stringify(p), { "Lambda-Runtime-Function-Error-Type": p.errorType, "Content-Type": "application/json" });
      continue;
    }
    await post(`/invocation/${requestId}/response`, body, { "Content-Type": "application/json" });
  }
}

main().catch((e) => {
  process.stderr.write(`Nimbus Node.js runtime failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
