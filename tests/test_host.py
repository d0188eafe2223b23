"""The host side: `cnnhw run`'s link logic against a software board that speaks the protocol with
the integer golden model, and `cnnhw flash` (the command it would run, and its failures). A real
board is needed only to run the programmer and the serial port for real; nothing here claims to."""

import os
import socket
import stat
import threading
import time

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.errors import CnnhwError
from cnnhw.flow.build import host_facts
from cnnhw.frontend import load_model
from cnnhw.golden.int_ref import run_int
from cnnhw.outputs import mark_folder, write_json
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.runtime.flash import file_digest
from cnnhw.runtime.host import BoardLink, LinkFacts
from cnnhw.protocol.frames import MAX_IMAGE_BUFFERS, Error, FrameDecoder, FrameType, Status, class_bytes, encode
from cnnhw.verify import expected_streams, stream_order
from netgen import random_network


class SoftwareBoard:
    """A pyserial-like port with a board behind it: frames in, golden-model RESULT frames out."""

    def __init__(self, qgraph, facts: LinkFacts, corrupt: bool = False):
        self.qgraph, self.facts, self.corrupt = qgraph, facts, corrupt
        self.decoder = FrameDecoder(max_length=1 << 16)
        self.outbox = bytearray()
        self.images = []

    def write(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.outbox += self.answer(frame)

    def answer(self, frame) -> bytes:
        if frame.type == FrameType.STATUS_REQUEST:
            return encode(FrameType.STATUS, bytes([Status.READY]))
        if self.corrupt:
            return encode(FrameType.ERROR, bytes([Error.BAD_CHECKSUM]))
        self.images.append(frame.payload)
        values = np.frombuffer(frame.payload, dtype=np.int8 if self.facts.quantizer.format.signed else np.uint8)
        # Undo the stream order: the board's logits come from the image it received.
        order = np.argsort(stream_order(self.facts.input_shape))
        image = values.astype(np.int64)[order].reshape(self.facts.input_shape) * self.facts.quantizer.scale
        logits = run_int(self.qgraph, image[None]).reshape(-1)
        payload = b"".join(int(v).to_bytes(self.facts.logit_bytes, "little", signed=True) for v in logits)
        cls = int(np.argmax(logits)).to_bytes(class_bytes(len(logits)), "little")
        return encode(FrameType.RESULT, payload + cls)

    def read(self, size: int) -> bytes:
        data, self.outbox = bytes(self.outbox[:size]), self.outbox[size:]
        return data


@pytest.fixture
def network(tmp_path):
    spec = random_network(5)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    return spec, qgraph, LinkFacts.from_build({"host": host_facts(qgraph, load_board("icebreaker").link_baud(24e6), 2)})


def test_the_host_sends_what_the_golden_model_quantizes_and_reads_results(network):
    spec, qgraph, facts = network
    x = spec.calibration(4)
    port = SoftwareBoard(qgraph, facts)
    link = BoardLink(port, facts, reply_timeout_s=1)
    assert link.status() == Status.READY
    expected = expected_streams(qgraph, x)
    per_image = len(expected.inputs) // 4
    for k, image in enumerate(x):
        result = link.classify(image)
        sent = np.frombuffer(port.images[k], dtype=np.int8 if facts.quantizer.format.signed else np.uint8)
        assert sent.tolist() == expected.inputs[k * per_image:(k + 1) * per_image]  # exactly the golden input stream
        assert result.cls == expected.classes[k]


class ComputingBoard(SoftwareBoard):
    """A board that holds ``MAX_IMAGE_BUFFERS`` images, as the gateware does: a RESULT comes
    ``compute_s`` after its image (the computing), in order, and an image beyond the buffers is
    answered BUSY."""

    def __init__(self, qgraph, facts: LinkFacts, compute_s: float = 0.03):
        super().__init__(qgraph, facts)
        self.compute_s, self.held, self.most_held = compute_s, [], 0

    def write(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if frame.type != FrameType.CLASSIFY:
                self.outbox += self.answer(frame)
            elif len(self.held) == MAX_IMAGE_BUFFERS:
                self.outbox += encode(FrameType.ERROR, bytes([Error.BUSY]))
            else:
                self.held.append((time.monotonic() + self.compute_s, self.answer(frame)))
                self.most_held = max(self.most_held, len(self.held))

    def read(self, size: int) -> bytes:
        while self.held and self.held[0][0] <= time.monotonic():
            self.outbox += self.held.pop(0)[1]
        return super().read(size)


def test_the_host_keeps_two_images_in_flight_and_takes_their_results_in_order(network):
    """Sending the next image while the board computes one: never more than the board's buffers
    (no BUSY), every result that of its own image, and results that arrive in one read all kept."""
    spec, qgraph, facts = network
    x = spec.calibration(7)
    port = ComputingBoard(qgraph, facts)
    results = list(BoardLink(port, facts, reply_timeout_s=1).classify_all(x))
    assert [result.cls for result, _ in results] == expected_streams(qgraph, x).classes
    assert port.most_held == MAX_IMAGE_BUFFERS and all(seconds >= 0 for _, seconds in results)
    one_at_a_time = ComputingBoard(qgraph, facts)
    assert len(list(BoardLink(one_at_a_time, facts, reply_timeout_s=1).classify_all(x, in_flight=1))) == 7
    assert one_at_a_time.most_held == 1


def test_cnnhw_run_classifies_over_a_serial_port_with_two_images_in_flight(cli, tmp_path, network):
    """`cnnhw run` end to end, the board a ComputingBoard behind a TCP socket (pyserial's
    ``socket://`` port): every image's class is the golden model's, in order, and two were in flight."""
    spec, qgraph, facts = network
    x = spec.calibration(6)
    np.savez(tmp_path / "x.npz", x=x)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "top.bin").write_bytes(b"\xff\x00\x00\xff")
    _finish(folder, {"board": "icebreaker", "bitstream": "somewhere/out/top.bin", "model": "net",
                     "host": host_facts(qgraph, facts.baud, 2)})
    # A quarter second of computing: longer than TCP holds back a second small write (Nagle, until
    # the first is acknowledged), which a serial port does not do.
    board = ComputingBoard(qgraph, facts, compute_s=0.25)
    server = socket.create_server(("127.0.0.1", 0))
    bridge = threading.Thread(target=_serve, args=(server, board), daemon=True)
    bridge.start()
    result = cli("run", "--port", f"socket://127.0.0.1:{server.getsockname()[1]}", "--build", "out", "x.npz")
    assert result.returncode == 0, result.stderr
    printed = [int(line.split("class ")[1].split()[0]) for line in result.stdout.splitlines() if "class " in line]
    assert printed == expected_streams(qgraph, x).classes
    assert "6 images in " in result.stdout and "2 in flight" in result.stdout
    assert board.most_held == MAX_IMAGE_BUFFERS
    bridge.join(timeout=10)


def _serve(server, board):
    """Bytes from the one client into ``board``, its replies back, until the client hangs up."""
    connection, _ = server.accept()
    connection.settimeout(0.005)
    with connection, server:
        while True:
            try:
                data = connection.recv(4096)
                if not data:
                    return
                board.write(data)
            except TimeoutError:
                pass
            reply = board.read(4096)
            if reply:
                connection.sendall(reply)


def test_the_host_reports_a_refused_image_and_a_silent_board(network):
    spec, qgraph, facts = network
    link = BoardLink(SoftwareBoard(qgraph, facts, corrupt=True), facts, reply_timeout_s=0.2)
    with pytest.raises(CnnhwError, match=r"the board refused the image \(BAD_CHECKSUM\)"):
        link.classify(spec.calibration(1)[0])

    class Silent:
        def write(self, data):
            pass

        def read(self, size):
            return b""

    with pytest.raises(CnnhwError, match="did not answer within 0.2 s"):
        BoardLink(Silent(), facts, reply_timeout_s=0.2).status()


def _finish(folder, facts):
    """Write build.json as a build does: with the digests of the files and the folder's marker."""
    facts["files"] = {path.name: file_digest(path) for path in folder.iterdir() if path.suffix in (".bin", ".bit")}
    write_json(folder / "build.json", facts)
    mark_folder(folder, "build")


@pytest.fixture
def finished_build(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "top.bin").write_bytes(b"\xff\x00\x00\xff")
    _finish(folder, {"board": "icebreaker", "bitstream": "somewhere/out/top.bin"})
    return folder


def _fake_tool(folder, name, exit_code, message):
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{message}" >&2\nexit {exit_code}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_flash_dry_run_prints_the_command(cli, tmp_path, finished_build):
    result = cli("flash", "out", "--dry-run", env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == "iceprog out/top.bin"
    result = cli("flash", "out", "--dry-run", "--programmer", "openFPGALoader")
    assert result.stdout.strip() == "openFPGALoader --board ice40_generic --write-flash out/top.bin"


@pytest.mark.parametrize("board, commands", [
    ("ulx3s-85f", {"openFPGALoader": "openFPGALoader --board ulx3s --write-flash out/top.bit",
                   "fujprog": "fujprog -j flash out/top.bit"}),
    ("orangecrab-25f", {"dfu-util": "dfu-util -a 0 -D out/top.bit",
                        "openFPGALoader": "openFPGALoader --board orangeCrab out/top.bit"})])
def test_flash_dry_run_on_ecp5_boards_gives_their_profiles_command_lines(cli, tmp_path, board, commands):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "top.bit").write_bytes(b"\xff\x00Part: LFE5U\x00")
    _finish(folder, {"board": board, "bitstream": "somewhere/out/top.bit"})
    first = next(iter(commands))
    result = cli("flash", "out", "--dry-run", env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == commands[first]
    for tool, command in commands.items():
        assert cli("flash", "out", "--dry-run", "--programmer", tool).stdout.strip() == command


def test_flash_without_a_programmer_or_a_board(cli, tmp_path, finished_build):
    python_dir = os.path.dirname(os.sys.executable)
    result = cli("flash", "out", env={**os.environ, "PATH": python_dir})
    assert result.returncode == 2 and "no flash programmer found" in result.error_line
    tools = tmp_path / "bin"
    tools.mkdir()
    _fake_tool(tools, "iceprog", 2, "Can't find iCE FTDI USB device (vendor_id 0x0403, device_id 0x6010).")
    result = cli("flash", "out", env={**os.environ, "PATH": f"{tools}{os.pathsep}{python_dir}"})
    assert result.returncode == 2
    assert "iceprog failed (exit 2): Can't find iCE FTDI USB device" in result.error_line
    assert "plugged in" in result.error_line


def test_flash_and_run_refuse_an_unfinished_build(cli, tmp_path):
    (tmp_path / "half").mkdir()
    for command in (("flash", "half"), ("run", "--port", "loop://", "--build", "half", "x.npz")):
        result = cli(*command)
        assert result.returncode == 2 and "half is not a finished cnnhw build" in result.error_line


@pytest.fixture
def build_with_weights(tmp_path):
    """A finished build whose plan keeps weights in SPRAM: bitstream, weight image, build.json."""
    from cnnhw.protocol.weight_image import WeightImage

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "top.bin").write_bytes(b"\xff\x00\x00\xff")
    image = WeightImage.from_blocks([(0, [1, 2, 3]), (1, [0xBEEF])]).to_bytes()
    (folder / "weights.bin").write_bytes(image)
    _finish(folder, {"board": "icebreaker", "bitstream": "somewhere/out/top.bin",
                     "weight_image": {"file": "somewhere/out/weights.bin", "offset": 1048576, "bytes": len(image)}})
    return folder


def test_flash_writes_the_weight_image_at_its_offset(cli, tmp_path, build_with_weights):
    result = cli("flash", "out", "--dry-run", env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 0
    assert result.stdout.strip().splitlines() == ["iceprog out/top.bin", "iceprog -o 1048576 out/weights.bin"]
    result = cli("flash", "out", "--dry-run", "--programmer", "openFPGALoader")
    assert result.stdout.strip().splitlines()[1] == ("openFPGALoader --board ice40_generic --write-flash "
                                                     "--offset 1048576 out/weights.bin")
    # Both writes happen, in order, with a programmer that succeeds.
    tools = tmp_path / "bin"
    tools.mkdir()
    log = tmp_path / "calls.log"
    (tools / "iceprog").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (tools / "iceprog").chmod(0o755)
    python_dir = os.path.dirname(os.sys.executable)
    result = cli("flash", "out", env={**os.environ, "PATH": f"{tools}{os.pathsep}{python_dir}"})
    assert result.returncode == 0, result.error_line
    assert log.read_text().splitlines() == ["out/top.bin", "-o 1048576 out/weights.bin"]


def test_flash_refuses_a_damaged_weight_image(cli, tmp_path, build_with_weights):
    tools = tmp_path / "bin"
    tools.mkdir()
    log = tmp_path / "calls.log"
    (tools / "iceprog").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (tools / "iceprog").chmod(0o755)
    image = bytearray((build_with_weights / "weights.bin").read_bytes())
    image[-1] ^= 0x01
    (build_with_weights / "weights.bin").write_bytes(bytes(image))
    python_dir = os.path.dirname(os.sys.executable)
    result = cli("flash", "out", env={**os.environ, "PATH": f"{tools}{os.pathsep}{python_dir}"})
    assert result.returncode == 2 and "does not match the digest" in result.error_line
    assert not log.exists()  # nothing was written


def test_the_host_waits_for_the_weights_and_reports_bad_ones(network):
    spec, qgraph, facts = network

    class LoadingBoard(SoftwareBoard):
        def __init__(self, statuses):
            super().__init__(qgraph, facts)
            self.statuses = list(statuses)

        def write(self, data):
            for frame in FrameDecoder().feed(data):
                assert frame.type == FrameType.STATUS_REQUEST
                self.outbox += encode(FrameType.STATUS, bytes([self.statuses.pop(0)]))

    loading = LoadingBoard([Status.LOADING_WEIGHTS] * 3 + [Status.READY])
    BoardLink(loading, facts, reply_timeout_s=0.2).wait_until_ready(poll_s=0.001)
    assert loading.statuses == []  # asked until READY
    with pytest.raises(CnnhwError, match="weight image is missing, damaged or from another build"):
        BoardLink(LoadingBoard([Status.LOADING_WEIGHTS, Status.BAD_WEIGHTS]), facts,
                  reply_timeout_s=0.2).wait_until_ready(poll_s=0.001)
