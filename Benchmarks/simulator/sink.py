#!/usr/bin/env python3
"""A discard sink for simulator benchmarks: accepts TCP connections or UDP datagrams on 127.0.0.1,
reads everything as fast as it can, counts bytes and lines, and prints one JSON line when it gets
SIGTERM/SIGINT (or after --seconds). It parses nothing, so the measured path is the simulator's."""
import argparse, json, os, selectors, signal, socket, sys, time

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["tcp", "udp"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()

    stop = {"now": False}
    def on_signal(*_):
        stop["now"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    kind = socket.SOCK_STREAM if args.mode == "tcp" else socket.SOCK_DGRAM
    listener = socket.socket(socket.AF_INET, kind)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.mode == "udp":
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    listener.bind(("127.0.0.1", args.port))
    if args.mode == "tcp":
        listener.listen(64)
    port = listener.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(str(port))
        os.rename(tmp, args.port_file)

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    total_bytes = lines = datagrams = 0
    first = last = None
    deadline = time.monotonic() + args.seconds if args.seconds else None
    while not stop["now"]:
        if deadline and time.monotonic() > deadline:
            break
        try:
            events = selector.select(timeout=0.2)
        except InterruptedError:
            continue
        for key, _ in events:
            sock = key.fileobj
            if sock is listener and args.mode == "tcp":
                connection, _ = listener.accept()
                connection.setblocking(False)
                selector.register(connection, selectors.EVENT_READ)
                continue
            while True:
                try:
                    count = sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionResetError:
                    count = 0
                if count == 0 and args.mode == "tcp":
                    selector.unregister(sock)
                    sock.close()
                    break
                now = time.monotonic()
                first = first or now
                last = now
                total_bytes += count
                lines += buffer.count(b"\n", 0, count)
                datagrams += 1
                if args.mode == "udp":
                    sock.setblocking(False)
    udp_drops = None
    if args.mode == "udp":
        try:
            with open("/proc/net/udp") as handle:
                for row in handle.readlines()[1:]:
                    fields = row.split()
                    if int(fields[1].split(":")[1], 16) == port:
                        udp_drops = int(fields[-1])
        except OSError:
            pass
    print(json.dumps({"mode": args.mode, "port": port, "bytes": total_bytes, "lines": lines, "reads": datagrams,
                      "active_s": (last - first) if first and last else 0, "kernel_drops": udp_drops}), flush=True)

if __name__ == "__main__":
    main()
