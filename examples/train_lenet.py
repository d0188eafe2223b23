"""Train the example LeNet-5 and write examples/lenet.onnx plus its data files.

Data: scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, values
0..16; no download), resized to 32x32 with bilinear interpolation and rounded to 8-bit
steps (k / 255), so the float images are exactly what an 8-bit camera would give.

Writes (beside this script):
  lenet.onnx        LeNet-5: conv 5x5x6, ReLU, max-pool 2, conv 5x5x16, ReLU, max-pool 2,
                    dense 120, ReLU, 84, ReLU, 10 (input 1x32x32, values 0..1)
  lenet.calib.npz   x: 256 training images for quantization calibration
  lenet.test.npz    x, y: the held-out test split (20 % of the digits)

Run:  pip install -e '.[train]' && python examples/train_lenet.py
Deterministic on one machine (seeded, single thread); exact weights may differ across
PyTorch versions, which is why the trained file is shipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional

HERE = Path(__file__).resolve().parent
SEED = 2026


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = functional.max_pool2d(functional.relu(self.conv1(x)), 2)
        x = functional.max_pool2d(functional.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = functional.relu(self.fc1(x))
        x = functional.relu(self.fc2(x))
        return self.fc3(x)


def digits_32x32() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    resized = functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    x = (torch.round(resized.clamp(0, 1) * 255) / 255).numpy().astype(np.float32)
    return x, digits.target.astype(np.int64)


def split(x, y, test_fraction=0.2):
    order = np.random.default_rng(SEED).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


def train(model, x, y, epochs=30, batch=64, lr=2e-3):
    generator = torch.Generator().manual_seed(SEED)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    xs, ys = torch.tensor(x), torch.tensor(y)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for start in range(0, len(xs), batch):
            index = order[start:start + batch]
            # Small random shifts make the network robust to where the digit sits.
            shifted = torch.roll(xs[index], shifts=tuple(torch.randint(-2, 3, (2,), generator=generator).tolist()),
                                 dims=(2, 3))
            loss = functional.cross_entropy(model(shifted), ys[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(index)
        schedule.step()
        print(f"epoch {epoch + 1:2d}: loss {total / len(xs):.4f}")


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.tensor(x)).argmax(1).numpy() == y).mean())


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x, y = digits_32x32()
    (x_train, y_train), (x_test, y_test) = split(x, y)
    model = LeNet5()
    train(model, x_train, y_train)
    print(f"float accuracy: train {accuracy(model, x_train, y_train):.2%}, test {accuracy(model, x_test, y_test):.2%}")

    model.eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), HERE / "lenet.onnx", input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13, dynamo=False)
    calib = np.random.default_rng(SEED).choice(len(x_train), size=256, replace=False)
    np.savez_compressed(HERE / "lenet.calib.npz", x=x_train[np.sort(calib)])
    np.savez_compressed(HERE / "lenet.test.npz", x=x_test, y=y_test)
    print(f"wrote {HERE / 'lenet.onnx'}, lenet.calib.npz ({len(calib)} images), lenet.test.npz ({len(x_test)} images)")


if __name__ == "__main__":
    main()
