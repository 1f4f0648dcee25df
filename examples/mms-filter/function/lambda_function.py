"""The MMS image filter: an SMS/MMS webhook (Twilio-style form, turned into JSON by the API's
request template) whose first image is downloaded, filtered with Pillow, and described in the
reply (turned into TwiML by the response template)."""

import io
import urllib.request

from PIL import Image, ImageFilter, ImageOps, ImageStat


def lambda_handler(event, context):
    sender = event.get("From", "")
    if not sender:
        raise ValueError("Bad request: the webhook carried no sender")
    if int(event.get("NumMedia") or 0) < 1:
        return {"message": "Send a picture and I will filter it for you."}
    with urllib.request.urlopen(event["MediaUrl0"], timeout=10) as r:
        original = Image.open(io.BytesIO(r.read()))
        original.load()
    # The filter: grayscale, then edge enhancement, then a soft blur.
    filtered = ImageOps.grayscale(original).filter(ImageFilter.EDGE_ENHANCE_MORE).filter(ImageFilter.GaussianBlur(1))
    out = io.BytesIO()
    filtered.save(out, format="PNG")
    mean = ImageStat.Stat(filtered).mean[0]
    return {
        "message": "Filtered your %dx%d %s image (%s): %d bytes, mean brightness %.1f" % (
            original.width, original.height, original.format, event.get("Body", ""), out.tell(), mean),
        "width": original.width,
        "height": original.height,
    }
