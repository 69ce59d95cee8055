// Node-Media-Server v4 as a peer for bench/compare.py: RTMP and HTTP-FLV on loopback, nothing else.
//
//   npm install --prefix bench/peers node-media-server@4      (once; bench/peers/node_modules is git-ignored)
//   taskset -c 0 node bench/peers/nms.js RTMP_PORT HTTP_PORT DATA_DIR
//
// The configuration mirrors the streamhive and nginx-rtmp ones: bind 127.0.0.1, one RTMP port and
// one HTTP port (HTTP-FLV at http://127.0.0.1:HTTP_PORT/live/NAME.flv), no auth, no recording, no
// RTMPS/HTTPS, no web admin, logging at "warn" (v4 logs every session at "debug" by default).
// NMS v4 always keeps a GOP cache (there is no switch for it).
"use strict";
const path = require("path");
const NodeMediaServer = require(path.join(__dirname, "node_modules", "node-media-server"));
const logger = require(path.join(__dirname, "node_modules", "node-media-server", "src", "core", "logger.js"));

const [rtmpPort, httpPort, dataDir] = process.argv.slice(2);
if (!rtmpPort || !httpPort) {
  console.error("usage: node nms.js RTMP_PORT HTTP_PORT [DATA_DIR]");
  process.exit(2);
}
const config = {
  bind: "127.0.0.1",
  rtmp: { port: Number(rtmpPort) },
  http: { port: Number(httpPort) },
  auth: { play: false, publish: false, secret: "bench" },
  store: { path: dataDir || path.join(require("os").tmpdir(), "nms-bench-data") },
  webadmin: { enable: false },
  record: { auto: false, path: path.join(dataDir || require("os").tmpdir(), "record") },
  notify: { url: "" },
};
const nms = new NodeMediaServer(config, "");
logger.level = "warn";
nms.run();
const stop = async () => {
  await nms.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
