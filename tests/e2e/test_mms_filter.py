"""The seed scenario end to end: examples/mms-filter deployed with boto3 (a Python function with
Pillow, a REST API with request and response mapping templates), a form-encoded webhook, a
picture served by a local HTTP server, TwiML back."""

import http.server
import importlib.util
import io
import os
import threading
import urllib.parse
import urllib.request

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_deploy():
    spec = importlib.util.spec_from_file_location("mms_deploy", os.path.join(ROOT, "examples", "mms-filter", "deploy.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def image_server(port):
    img = Image.new("RGB", (64, 48))
    for x in range(64):
        for y in range(48):
            img.putpixel((x, y), (x * 4, y * 5, (x + y) * 2))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    data = buf.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def post_form(url, fields):
    body = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def test_mms_filter_end_to_end(server, host_port):
    # Functions reach the host only at the port the server opened to them.
    srv = image_server(host_port)
    try:
        api_id = load_deploy().deploy(server)
        webhook = "%s/restapis/%s/prod/_user_request_/sms" % (server, api_id)
        media = "http://127.0.0.1:%d/cat.jpg" % srv.server_address[1]
        status, ctype, body = post_form(webhook, {
            "From": "+15551234567", "To": "+15557654321", "Body": "make it moody",
            "NumMedia": "1", "MediaUrl0": media,
        })
        assert status == 200, body
        assert ctype == "application/xml"
        assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Filtered your 64x48 JPEG image (make it moody): ')
        assert body.endswith("</Message></Response>")
        assert "mean brightness" in body
        # No sender: the function's error is selected by the 400 integration response.
        status, ctype, body = post_form(webhook, {"Body": "x", "NumMedia": "0"})
        assert status == 400 and ctype == "application/xml"
        assert body == "<Response><Message>Bad request: the webhook carried no sender</Message></Response>"
    finally:
        srv.shutdown()
