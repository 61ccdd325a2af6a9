"""A stand-in for TF Serving's REST predict API, for trying `tfadvser attack-query --server`
where `tensorflow_model_server` is not installed:

    python benchmarks/serving_stand_in.py saved_models/NAME/1 NAME --port 8501

Answers `POST /v1/models/NAME[/versions/N]:predict` with {"signature_name", "instances"}
(row format) by running the SavedModel's signature (`tf.saved_model.load`), as
{"predictions": [...]}; a bad request gets HTTP 400 with {"error": ...}, as TF Serving does.
Logs one line per request (instances, seconds) to stderr. Loopback only.
"""
import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf


def handler(model, name):
    class Predict(BaseHTTPRequestHandler):
        def do_POST(self):
            start = time.perf_counter()
            path = self.path.split(":")[0]
            if not (path == f"/v1/models/{name}" or path.startswith(f"/v1/models/{name}/versions/")):
                return self._answer(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                signature = model.signatures[request.get("signature_name", "serving_default")]
                instances = request["instances"]
                inputs = {k: tf.constant(np.asarray([i[k] for i in instances], np.float32))
                          for k in instances[0]}
                outputs = {k: v.numpy() for k, v in signature(**inputs).items()}
            except Exception as exc:  # TF Serving answers 400 with the error text
                return self._answer(400, {"error": str(exc)[:300]})
            predictions = [{k: (v[i].decode() if isinstance(v[i], bytes) else v[i].tolist())
                            for k, v in outputs.items()} for i in range(len(instances))]
            self._answer(200, {"predictions": predictions})
            print(f"{len(instances)} instances, {time.perf_counter() - start:.3f} s",
                  file=sys.stderr, flush=True)

        def _answer(self, code, value):
            body = json.dumps(value).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return Predict


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("saved_model")
    parser.add_argument("name")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args()
    model = tf.saved_model.load(args.saved_model)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(model, args.name))
    print(f"serving {args.saved_model} as {args.name} on http://127.0.0.1:{args.port}",
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
