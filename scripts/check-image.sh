#!/usr/bin/env bash
# Build the container image and check it end to end: it becomes healthy by its own HEALTHCHECK with
# two workers, answers /v1/detect and /metrics, runs as a user other than root, and stops cleanly
# (exit 0) on `docker stop`. Needs a running Docker daemon that can get the python:3.11-slim base
# and reach PyPI; takes minutes (a 5 GB install) and about 7 GB of disk.
#
#   bash scripts/check-image.sh            # builds maskdetect:check, checks it, prints the image size
#   PORT=18000 TAG=maskdetect:mine bash scripts/check-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${TAG:-maskdetect:check}
PORT=${PORT:-18000}
NAME=maskdetect-check-$$
PHOTO=src/maskdetect/assets/sample/andrewmvd/images/maksssksksss52.jpg

docker build ${DOCKER_BUILD_ARGS:-} -t "$TAG" .
docker run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -e MASKDETECT_WORKERS=2 "$TAG" >/dev/null
trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT

status=starting
for _ in $(seq 100); do  # the HEALTHCHECK's first try comes 30 s after the start
  status=$(docker inspect --format '{{.State.Health.Status}}' "$NAME")
  [ "$status" = starting ] || break
  sleep 3
done
[ "$status" = healthy ] || { docker logs "$NAME" | tail -30; echo "check-image: not healthy ($status)" >&2; exit 1; }

python3 - "$PORT" "$PHOTO" <<'EOF'
import json, sys, urllib.request, uuid

port, photo = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}"
boundary = uuid.uuid4().hex
body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n").encode() + open(photo, "rb").read() + f"\r\n--{boundary}--\r\n".encode()
for _ in range(4):
    request = urllib.request.Request(f"{url}/v1/detect", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.load(urllib.request.urlopen(request, timeout=120))
    assert answer["faces"], answer
metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
line = 'maskdetect_http_requests_total{route="/v1/detect",status="200"} 4.0'
assert line in metrics, metrics[:2000]
print(f"check-image: {len(answer['faces'])} faces a photo; /metrics: {line}")
EOF

user=$(docker exec "$NAME" id -u)
[ "$user" != 0 ] || { echo "check-image: the server runs as root" >&2; exit 1; }
docker logs "$NAME" 2>&1 | grep -q "with 2 workers" || { echo "check-image: not 2 workers" >&2; exit 1; }
docker stop "$NAME" >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { docker logs "$NAME" | tail -30; echo "check-image: exit code $code after docker stop" >&2; exit 1; }
echo "check-image: healthy, 2 workers, user $user, clean stop; image $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.2f GB", $1 / 1e9}')"
