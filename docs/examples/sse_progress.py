"""How-to: stream task progress to a web page with server-sent events.

A small HTTP server on ``trio.serve_tcp``, with no dependency beyond trio_tasks:

- ``GET /`` serves a page with a button that starts a render and shows its progress;
- ``POST /renders/<id>`` starts the render ``<id>``;
- ``GET /renders/<id>/events`` streams its progress as server-sent events, one per TaskCtl.
"""

import json
from functools import partial

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskAlreadyRunning, TaskCtl, TaskManager, open_task_manager

plugin = Plugin(name="Studio", module_name="studio")

FRAME_SECONDS = 0.5


@plugin.mount_async_task("render")
async def render(handle: AsyncTaskHandle, scene: str, frames: int = 10):
    for frame in range(frames):
        yield TaskCtl.report_progress(f"Rendering {scene}: frame {frame + 1} of {frames}", 100 * frame / frames)
        await trio.sleep(FRAME_SECONDS)
    yield TaskCtl.success(f"Rendered {scene}", data={"file": f"{scene}.mp4"})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Renders</title></head>
<body>
  <button id="start">Render a scene</button>
  <progress id="bar" max="100" value="0"></progress> <span id="status"></span>
  <script>
    let renders = 0;
    document.getElementById("start").onclick = async () => {
      const id = `R${++renders}`;
      await fetch(`/renders/${id}`, {method: "POST"});
      const events = new EventSource(`/renders/${id}/events`);
      events.addEventListener("progress", (event) => {
        const ctl = JSON.parse(event.data);
        document.getElementById("bar").value = ctl.progress;
        document.getElementById("status").textContent = ctl.message;
      });
      for (const end of ["success", "fail", "cancel"]) {
        events.addEventListener(end, (event) => {
          document.getElementById("status").textContent = `${end}: ${JSON.parse(event.data).message}`;
          events.close();  // else the browser reconnects when the server ends the stream
        });
      }
    };
  </script>
</body></html>
"""


def response(status: str, content_type: str, body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


def sse(ctl: TaskCtl) -> bytes:
    """One server-sent event: the signal names the event, the data is JSON."""
    data = json.dumps({"message": ctl.message, "progress": ctl.progress})
    return f"event: {ctl.signal.value}\ndata: {data}\n\n".encode()


async def read_request_line(stream: trio.SocketStream) -> list[str]:
    """The method and path of one request (the headers are read and ignored)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]


async def stream_events(stream: trio.SocketStream, manager: TaskManager, task_id: str) -> None:
    if not manager.is_running("render", task_id):
        state = manager.get_state("render", task_id)  # it has ended: send its outcome, if known
        if state is None:
            await stream.send_all(response("404 Not Found", "text/plain", b"no such render\n"))
        else:
            await stream.send_all(response("200 OK", "text/event-stream", sse(state)))
        return
    async with manager.watch("render", task_id) as events:  # from its current state to its terminal
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\n\r\n"
        )
        async for event in events:
            await stream.send_all(sse(event.ctl))


async def handle_connection(manager: TaskManager, stream: trio.SocketStream) -> None:
    async with stream:
        try:
            method, path = await read_request_line(stream)
            parts = path.strip("/").split("/")
            if method == "GET" and path == "/":
                await stream.send_all(response("200 OK", "text/html; charset=utf-8", PAGE.encode()))
            elif method == "POST" and len(parts) == 2 and parts[0] == "renders":
                await manager.start("render", parts[1], "web", plugin, scene=f"scene {parts[1]}")
                await stream.send_all(response("202 Accepted", "text/plain", b"started\n"))
            elif method == "GET" and len(parts) == 3 and parts[0] == "renders" and parts[2] == "events":
                await stream_events(stream, manager, parts[1])
            else:
                await stream.send_all(response("404 Not Found", "text/plain", b"not found\n"))
        except TaskAlreadyRunning:
            await stream.send_all(response("409 Conflict", "text/plain", b"already running\n"))
        except ValueError:  # a request line that is not "METHOD PATH ..."
            await stream.send_all(response("400 Bad Request", "text/plain", b"bad request\n"))
        except trio.BrokenResourceError:
            pass  # the browser went away; leaving the watch block unsubscribes


async def serve(manager: TaskManager, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled (``port=0`` picks a free port)."""
    await trio.serve_tcp(partial(handle_connection, manager), port, host="127.0.0.1", task_status=task_status)


async def main(port: int = 8000):
    async with open_task_manager() as manager:
        print(f"Open http://127.0.0.1:{port}/ and press the button (Ctrl-C to stop).")
        await serve(manager, port)


if __name__ == "__main__":
    trio.run(main)
