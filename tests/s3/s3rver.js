// Test-only: starts s3rver (an S3-compatible server) on 127.0.0.1, port 0, with the bucket
// "media", serving virtual-host requests for <bucket>.s3.localhost. Prints one line
// {"port":N} once it listens; exits when its stdin closes (the test process went away) or on
// SIGTERM.   node tests/s3/s3rver.js <data dir>
"use strict";
const S3rver = require("s3rver");
const dir = process.argv[2];
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: dir,
  serviceEndpoint: "localhost",
  configureBuckets: [{ name: "media" }],
});
server.run().then(
  (addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + "\n"),
  (err) => { console.error("s3rver: " + err.message); process.exit(1); },
);
const stop = () => server.close().finally(() => process.exit(0));
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
