"""Deploys the MMS filter to a Nimbus server (or AWS) with boto3: the function (its code and
Pillow, installed into the package), and a REST API `POST /sms` whose request template turns
the webhook's form into JSON and whose response template answers with TwiML.

    python deploy.py --endpoint http://127.0.0.1:4566
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ROLE = "arn:aws:iam::000000000000:role/mms-filter"


def package():
    """The function's zip: its handler and Pillow (for the Python that runs it)."""
    build = tempfile.mkdtemp(prefix="mms-filter-")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--target", build, "pillow"], check=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(HERE, "function", "lambda_function.py"), "lambda_function.py")
        for base, _dirs, files in os.walk(build):
            for f in files:
                full = os.path.join(base, f)
                z.write(full, os.path.relpath(full, build))
    return buf.getvalue()


def deploy(endpoint, name="mms-filter", region="us-east-1"):
    kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    lam = boto3.client("lambda", **kw)
    gw = boto3.client("apigateway", **kw)
    fn = lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Timeout=30, MemorySize=256,
                             Handler="lambda_function.lambda_handler", Code={"ZipFile": package()})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    uri = "arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations" % (region, fn["FunctionArn"])
    api = gw.create_rest_api(name=name)
    sms = gw.create_resource(restApiId=api["id"], parentId=api["rootResourceId"], pathPart="sms")
    gw.put_method(restApiId=api["id"], resourceId=sms["id"], httpMethod="POST", authorizationType="NONE")
    with open(os.path.join(HERE, "request.vtl")) as f:
        request_template = f.read().rstrip("\n")
    with open(os.path.join(HERE, "response.vtl")) as f:
        response_template = f.read().rstrip("\n")
    gw.put_integration(restApiId=api["id"], resourceId=sms["id"], httpMethod="POST", type="AWS",
                       integrationHttpMethod="POST", uri=uri, passthroughBehavior="NEVER",
                       requestTemplates={"application/x-www-form-urlencoded": request_template})
    for code in ("200", "400"):
        gw.put_method_response(restApiId=api["id"], resourceId=sms["id"], httpMethod="POST", statusCode=code,
                               responseParameters={"method.response.header.Content-Type": True})
    gw.put_integration_response(restApiId=api["id"], resourceId=sms["id"], httpMethod="POST", statusCode="200",
                                responseParameters={"method.response.header.Content-Type": "'application/xml'"},
                                responseTemplates={"application/xml": response_template})
    gw.put_integration_response(restApiId=api["id"], resourceId=sms["id"], httpMethod="POST", statusCode="400",
                                selectionPattern="Bad request.*",
                                responseParameters={"method.response.header.Content-Type": "'application/xml'"},
                                responseTemplates={"application/xml": "<Response><Message>$input.path('$.errorMessage')</Message></Response>"})
    gw.create_deployment(restApiId=api["id"], stageName="prod")
    # As on AWS: allow API Gateway to invoke the function (recorded by Nimbus, which does not
    # authenticate callers; the same script deploys to AWS unchanged).
    account = fn["FunctionArn"].split(":")[4]
    lam.add_permission(FunctionName=name, StatementId="apigateway-sms", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com",
                       SourceArn="arn:aws:execute-api:%s:%s:%s/*/POST/sms" % (region, account, api["id"]))
    return api["id"]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"))
    a = p.parse_args()
    api_id = deploy(a.endpoint)
    print("webhook: %s/restapis/%s/prod/_user_request_/sms" % (a.endpoint.rstrip("/"), api_id))
