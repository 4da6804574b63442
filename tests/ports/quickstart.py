"""PyTorch's "Quickstart" tutorial (pytorch.org/tutorials/beginner/basics/quickstart_tutorial),
in our words with the same API calls: Fashion-MNIST, a Flatten + Linear/ReLU network, SGD,
train/test functions, save and reload the state_dict.

Shortened by the environment (see tests/test_ports.py): PORTS_DATA, PORTS_TRAIN, PORTS_TEST,
PORTS_EPOCHS, PORTS_INIT.
"""

import os

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision.transforms import ToTensor

DATA = os.environ.get("PORTS_DATA", "data")
N_TRAIN = int(os.environ.get("PORTS_TRAIN", 60000))
N_TEST = int(os.environ.get("PORTS_TEST", 10000))
EPOCHS = int(os.environ.get("PORTS_EPOCHS", 5))


def same_start(model):
    """Start from the weights in PORTS_INIT, or write them there (the test gives torch's run's
    initial weights to tinyconv's run); does nothing when PORTS_INIT is unset."""
    path = os.environ.get("PORTS_INIT")
    if path and os.path.exists(path):
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
    elif path:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


torch.manual_seed(0)

# Download training data from open datasets.
training_data = datasets.FashionMNIST(root=DATA, train=True, download=True, transform=ToTensor())
test_data = datasets.FashionMNIST(root=DATA, train=False, download=True, transform=ToTensor())
training_data = Subset(training_data, range(N_TRAIN))
test_data = Subset(test_data, range(N_TEST))

batch_size = 64
train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=True)
test_dataloader = DataLoader(test_data, batch_size=batch_size)

for X, y in test_dataloader:
    print(f"Shape of X [N, C, H, W]: {X.shape}")
    print(f"Shape of y: {y.shape} {y.dtype}")
    break

device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() \
    else "cpu"
print(f"Using {device} device")


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


model = NeuralNetwork().to(device)
same_start(model)
print(model)

loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)


def train(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)

        # Compute prediction error
        pred = model(X)
        loss = loss_fn(pred, y)

        # Backpropagation
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

        if batch % 100 == 0:
            loss, current = loss.item(), (batch + 1) * len(X)
            print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")


def test(dataloader, model, loss_fn):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    print(f"Test Error: \n Accuracy: {(100*correct):>0.1f}%, Avg loss: {test_loss:>8f} \n")
    return 100 * correct


for t in range(EPOCHS):
    print(f"Epoch {t+1}\n-------------------------------")
    train(train_dataloader, model, loss_fn, optimizer)
    test(test_dataloader, model, loss_fn)
print("Done!")

torch.save(model.state_dict(), "model.pth")
print("Saved PyTorch Model State to model.pth")

model = NeuralNetwork().to(device)
model.load_state_dict(torch.load("model.pth", weights_only=True))

classes = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

model.eval()
x, y = test_data[0][0], test_data[0][1]
with torch.no_grad():
    x = x.to(device)
    pred = model(x)
    predicted, actual = classes[pred[0].argmax(0)], classes[y]
    print(f'Predicted: "{predicted}", Actual: "{actual}"')

accuracy = test(test_dataloader, model, loss_fn)
print(f"RESULT accuracy={accuracy:.2f}")
