"""The board top in Amaranth's simulator: frames in on the RX pin bit by bit, replies out of the TX
pin decoded by the same protocol code as `cnnhw run`; results equal the golden model; bad frames
and a frame cut off mid-image get ERROR replies and the link keeps working."""

import random

import numpy as np
import onnx
import pytest
from amaranth.sim import Simulator

from cnnhw.frontend import load_model
from cnnhw.gateware.board import BoardTop
from cnnhw.hardware import Network
from cnnhw.plan import default_plan
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.protocol.frames import Error, FrameDecoder, FrameType, decode_result, encode, image_payload, logit_bytes
from cnnhw.verify import expected_streams
from netgen import random_network

DIVISOR = 4  # clock cycles per UART bit: the fastest the receiver allows, to keep the simulation short


def serial_bits(data: bytes, rng: random.Random, gap: float):
    """The RX pin level, one entry per clock cycle: 8N1 frames with random idle time between bytes."""
    levels = []
    for byte in data:
        while rng.random() < gap:
            levels += [1] * DIVISOR
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
            levels += [bit] * DIVISOR
    return levels


def run_board(top: BoardTop, levels, cycles_after: int):
    """Drive the RX pin with ``levels`` (one per cycle) and decode the TX pin as a host UART does,
    sampling the middle of each bit, in one testbench (no background processes)."""
    sent = []

    async def bench(ctx):
        countdown, bits = None, []
        for cycle in range(len(levels) + cycles_after):
            ctx.set(top.rx, levels[cycle] if cycle < len(levels) else 1)
            _, _, tx = await ctx.tick().sample(top.tx)
            if countdown is None:
                if tx == 0:  # a start bit begins: its middle is half a bit from here
                    countdown, bits = DIVISOR // 2 + DIVISOR, []
            else:
                countdown -= 1
                if countdown == 0:
                    bits.append(tx)
                    countdown = DIVISOR
                    if len(bits) == 9:  # 8 data bits and the stop bit
                        sent.append(sum(bit << i for i, bit in enumerate(bits[:8])))
                        countdown = None

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return bytes(sent)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    spec = random_network(11)  # a 1x7x10 input: short frames
    path = tmp_path_factory.mktemp("board") / "net.onnx"
    onnx.save(spec.model, path)
    qgraph = quantize_graph(load_model(path), QuantOptions(), spec.calibration())
    top = Network(qgraph, default_plan(qgraph)).board_top(clock_hz=4e6, baud=1_000_000, timeout_s=0.0002)
    return spec, qgraph, top


def test_classifies_over_the_uart_and_recovers_from_bad_frames(board):
    spec, qgraph, top = board
    images = spec.calibration(2)
    expected = expected_streams(qgraph, images)
    per_image = len(expected.inputs) // 2
    fmt = qgraph.layers[0].in_format
    frames = [encode(FrameType.CLASSIFY, image_payload(expected.inputs[k * per_image:(k + 1) * per_image],
                                                       fmt.signed, fmt.bits)) for k in range(2)]
    corrupted = bytearray(frames[1])
    corrupted[7] ^= 0x01  # a flipped bit in the payload: the checksum catches it
    cut_off = frames[1][: len(frames[1]) // 2]  # the host stops mid-image
    rng = random.Random(5)
    levels = []
    for chunk, pause in ((frames[0], 2500), (bytes(corrupted), 400), (cut_off, 1000), (encode(FrameType.CLASSIFY, bytes(3)), 400),
                         (encode(0x33, bytes(2)), 400), (encode(FrameType.STATUS_REQUEST), 400), (frames[1], 2500)):
        levels += serial_bits(chunk, rng, gap=0.2) + [1] * pause
    replies = FrameDecoder().feed(run_board(top, levels, cycles_after=2500))
    kinds = [(f.type, f.payload[0] if f.type != FrameType.RESULT else None) for f in replies]
    assert kinds == [(FrameType.RESULT, None), (FrameType.ERROR, Error.BAD_CHECKSUM), (FrameType.ERROR, Error.TIMEOUT),
                     (FrameType.ERROR, Error.BAD_LENGTH), (FrameType.ERROR, Error.UNKNOWN_TYPE), (FrameType.STATUS, 0),
                     (FrameType.RESULT, None)]
    value_bytes = logit_bytes(qgraph.layers[-1].out_format.bits)
    outputs = np.array(expected.outputs).reshape(2, -1)
    results = [decode_result(f, outputs.shape[1], value_bytes) for f in replies if f.type == FrameType.RESULT]
    for image, result in enumerate(results):
        assert result.logits == outputs[image].tolist()
        assert result.cls == expected.classes[image]
