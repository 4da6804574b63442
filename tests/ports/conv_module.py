"""The ConvModule MNIST tutorial (/work/shared/seed-networks.md section 3), in our words with the
same API calls: a Sequential of Conv2d / MaxPool2d / ReLU(inplace=True), three Linear layers,
Adam, train and test loss and accuracy recorded per epoch and plotted (Loss.jpg, Acc.jpg).

Shortened by the environment (see tests/test_ports.py): PORTS_DATA, PORTS_TRAIN, PORTS_TEST,
PORTS_EPOCHS, PORTS_INIT.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

DATA = os.environ.get("PORTS_DATA", "./data")
N_TRAIN = int(os.environ.get("PORTS_TRAIN", 60000))
N_TEST = int(os.environ.get("PORTS_TEST", 10000))
EPOCHS = int(os.environ.get("PORTS_EPOCHS", 20))


def same_start(model):
    """Start from the weights in PORTS_INIT, or write them there (the test gives torch's run's
    initial weights to tinyconv's run); does nothing when PORTS_INIT is unset."""
    path = os.environ.get("PORTS_INIT")
    if path and os.path.exists(path):
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
    elif path:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


torch.manual_seed(1)
BATCH_SIZE = 64
LR = 0.001
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
data_train = torchvision.datasets.MNIST(root=DATA, transform=transform, train=True,
                                        download=True)
data_test = torchvision.datasets.MNIST(root=DATA, transform=transform, train=False)
data_train = torch.utils.data.Subset(data_train, list(range(N_TRAIN)))
data_test = torch.utils.data.Subset(data_test, list(range(N_TEST)))
train_loader = DataLoader(data_train, batch_size=BATCH_SIZE, shuffle=True)
test_loader = DataLoader(data_test, batch_size=BATCH_SIZE, shuffle=True)


class ConvModule(nn.Module):
    def __init__(self):
        super(ConvModule, self).__init__()
        self.conv2d = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(2, 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(2, 2),
            nn.ReLU(inplace=True),
        )
        self.fc1 = nn.Linear(64 * 7 * 7, 1024)
        self.fc2 = nn.Linear(1024, 512)
        self.fc3 = nn.Linear(512, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.conv2d(x)
        x = x.view(-1, 64 * 7 * 7)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.fc3(x)
        return x


model = ConvModule().to(DEVICE)
same_start(model)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=LR)


def train(epoch):
    model.train()
    total_loss, correct = 0.0, 0
    for i, (images, labels) in enumerate(train_loader):
        images, labels = images.to(DEVICE), labels.to(DEVICE)
        outputs = model(images)
        loss = loss_fn(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        correct += torch.sum(torch.argmax(outputs, dim=1) == labels).item()
        if (i + 1) % 20 == 0:
            print(f"Epoch [{epoch + 1}/{EPOCHS}], Step [{i + 1}/{len(train_loader)}], "
                  f"Loss: {loss.item():.4f}")
    return total_loss / len(train_loader), 100 * correct / len(train_loader.dataset)


def test():
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in test_loader:
            images, labels = images.to(DEVICE), labels.to(DEVICE)
            outputs = model(images)
            total_loss += loss_fn(outputs, labels).item()
            _, predicted = torch.max(outputs.data, 1)
            correct += (predicted == labels).sum().item()
    return total_loss / len(test_loader), 100 * correct / len(test_loader.dataset)


history = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
for epoch in range(EPOCHS):
    train_loss, train_acc = train(epoch)
    test_loss, test_acc = test()
    history["train_loss"].append(train_loss)
    history["test_loss"].append(test_loss)
    history["train_acc"].append(train_acc)
    history["test_acc"].append(test_acc)
    print(f"epoch {epoch + 1}: loss {train_loss:.4f}/{test_loss:.4f}, "
          f"accuracy {train_acc:.2f}%/{test_acc:.2f}%")

for key, name in (("loss", "Loss.jpg"), ("acc", "Acc.jpg")):
    plt.figure()
    plt.plot(history[f"train_{key}"], label="train")
    plt.plot(history[f"test_{key}"], label="test")
    plt.xlabel("epoch")
    plt.legend()
    plt.savefig(name)
    plt.close()

torch.save(model.state_dict(), "conv_module.pth")
print(f"RESULT accuracy={history['test_acc'][-1]:.2f}")
