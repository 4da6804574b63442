"""The DeepFashionCNN tutorial (/work/shared/seed-networks.md section 2), in our words with the
same API calls: four 3x3 convolutions, AdaptiveAvgPool2d + Flatten head, RandomRotation(10) and
RandomHorizontalFlip, Adam with CosineAnnealingLR, the best epoch's weights kept, a confusion
matrix, the state_dict saved and the model exported to ONNX.

Shortened by the environment (see tests/test_ports.py): PORTS_DATA, PORTS_TRAIN, PORTS_TEST,
PORTS_EPOCHS, PORTS_INIT.
"""

import copy
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

DATA = os.environ.get("PORTS_DATA", "./data")
N_TRAIN = int(os.environ.get("PORTS_TRAIN", 60000))
N_TEST = int(os.environ.get("PORTS_TEST", 10000))
EPOCHS = int(os.environ.get("PORTS_EPOCHS", 10))


def same_start(model):
    """Start from the weights in PORTS_INIT, or write them there (the test gives torch's run's
    initial weights to tinyconv's run); does nothing when PORTS_INIT is unset."""
    path = os.environ.get("PORTS_INIT")
    if path and os.path.exists(path):
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
    elif path:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


torch.manual_seed(42)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

train_transform = transforms.Compose([
    transforms.RandomRotation(10),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.5,), (0.5,)),
])
test_transform = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.5,), (0.5,)),
])

train_dataset = datasets.FashionMNIST(root=DATA, train=True, download=True,
                                      transform=train_transform)
test_dataset = datasets.FashionMNIST(root=DATA, train=False, download=True,
                                     transform=test_transform)
train_dataset = Subset(train_dataset, range(N_TRAIN))
test_dataset = Subset(test_dataset, range(N_TEST))
train_loader = DataLoader(train_dataset, batch_size=64, shuffle=True)
test_loader = DataLoader(test_dataset, batch_size=1000, shuffle=False)

classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DeepFashionCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.classifier(x)
        return x


model = DeepFashionCNN().to(device)
same_start(model)
n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"trainable parameters: {n_params:,}")

criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)
scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)


def train_one_epoch(epoch):
    model.train()
    running_loss, correct, total = 0.0, 0, 0
    for inputs, targets in train_loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * inputs.size(0)
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    print(f"epoch {epoch + 1}: train loss {running_loss / total:.4f}, "
          f"train acc {100. * correct / total:.2f}%, lr {scheduler.get_last_lr()[0]:.6f}")


def evaluate():
    model.eval()
    correct, total = 0, 0
    all_preds, all_targets = [], []
    with torch.no_grad():
        for inputs, targets in test_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            preds = outputs.argmax(dim=1)
            correct += (preds == targets).sum().item()
            total += targets.size(0)
            all_preds.append(preds.cpu())
            all_targets.append(targets.cpu())
    return 100. * correct / total, torch.cat(all_preds), torch.cat(all_targets)


best_acc = 0.0
best_state = None
for epoch in range(EPOCHS):
    train_one_epoch(epoch)
    acc, preds, targets = evaluate()
    scheduler.step()
    print(f"epoch {epoch + 1}: test acc {acc:.2f}%")
    if acc > best_acc:
        best_acc = acc
        best_state = copy.deepcopy(model.state_dict())
        torch.save(best_state, "best_model.pth")

model.load_state_dict(best_state)
acc, preds, targets = evaluate()

confusion = torch.zeros(10, 10, dtype=torch.int64)
for t, p in zip(targets.view(-1), preds.view(-1)):
    confusion[t.long(), p.long()] += 1
per_class = confusion.diag().float() / confusion.sum(1).float()
for name, value in zip(classes, per_class.tolist()):
    print(f"{name:>12s}: {100 * value:.1f}%")

fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(confusion.numpy(), cmap="Blues")
ax.set_xticks(range(10))
ax.set_xticklabels(classes, rotation=90)
ax.set_yticks(range(10))
ax.set_yticklabels(classes)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
fig.tight_layout()
fig.savefig("confusion_matrix.png")

torch.save(model.state_dict(), "fashion_mnist_cnn.pth")
model.eval()
dummy_input = torch.randn(1, 1, 28, 28, device=device)
torch.onnx.export(model, dummy_input, "fashion_mnist_cnn.onnx",
                  input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}},
                  dynamo=False)
print(f"exported to ONNX: {os.path.getsize('fashion_mnist_cnn.onnx')} bytes")
print(f"RESULT accuracy={acc:.2f} best={best_acc:.2f}")
