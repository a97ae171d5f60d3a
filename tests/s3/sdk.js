// Test-only: what the AWS SDK for JavaScript produces for one request, so tests can compare our
// SigV4 signatures with it. One JSON argument, one JSON line out.
//   {"op":"presign", "region", "endpoint" (omit: AWS), "forcePathStyle", "bucket", "key",
//    "accessKeyId", "secretAccessKey", "now" (Unix s), "expires" (s)}  -> {"url"}
//     (@aws-sdk/client-s3 GetObjectCommand + @aws-sdk/s3-request-presigner getSignedUrl)
//   {"op":"sign", "region", "accessKeyId", "secretAccessKey", "method", "protocol", "hostname",
//    "port", "path", "query" {name: value}, "headers" {name: value}, "date" (x-amz-date)}
//     -> {"authorization"}   (@smithy/signature-v4, the SDK's signer, service s3)
"use strict";
const { S3Client, GetObjectCommand } = require("@aws-sdk/client-s3");
const { getSignedUrl } = require("@aws-sdk/s3-request-presigner");
const { SignatureV4 } = require("@smithy/signature-v4");
const { Sha256 } = require("@aws-crypto/sha256-js");

function amzDate(s) { // 20231114T221320Z -> Date
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new Error("bad x-amz-date " + s);
  return new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

async function main() {
  const q = JSON.parse(process.argv[2]);
  const credentials = { accessKeyId: q.accessKeyId, secretAccessKey: q.secretAccessKey };
  if (q.op === "presign") {
    const cfg = { region: q.region, credentials, forcePathStyle: !!q.forcePathStyle };
    if (q.endpoint) cfg.endpoint = q.endpoint;
    const client = new S3Client(cfg);
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: q.bucket, Key: q.key }),
      { expiresIn: q.expires, signingDate: new Date(q.now * 1000) });
    return { url };
  }
  if (q.op === "sign") {
    const signer = new SignatureV4({ service: "s3", region: q.region, credentials, sha256: Sha256,
      uriEscapePath: false, applyChecksum: false });
    const req = { method: q.method, protocol: q.protocol, hostname: q.hostname, port: q.port || undefined,
      path: q.path, query: q.query || {}, headers: q.headers };
    const signed = await signer.sign(req, { signingDate: amzDate(q.date) });
    return { authorization: signed.headers.authorization || signed.headers.Authorization };
  }
  throw new Error("unknown op " + q.op);
}

main().then((r) => process.stdout.write(JSON.stringify(r) + "\n"),
  (e) => { console.error("sdk.js: " + e.message); process.exit(1); });
