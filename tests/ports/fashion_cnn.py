"""The FashionCNN tutorial (Fashion-MNIST with a two-block CNN; /work/shared/seed-networks.md
section 1), in our words with the same API calls: torchvision's FashionMNIST, two Conv2d +
BatchNorm2d + ReLU + MaxPool2d blocks, Linear/Dropout2d/Linear, Adam, an accuracy check every
few iterations, per-class accuracy and the list of predictions.

Shortened by the environment (see tests/test_ports.py): PORTS_DATA, PORTS_TRAIN, PORTS_TEST,
PORTS_EPOCHS, PORTS_INIT.
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as transforms
from torch.utils.data import DataLoader

DATA = os.environ.get("PORTS_DATA", "./data")
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
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
train_set = torchvision.datasets.FashionMNIST(DATA, download=True, transform=transform)
test_set = torchvision.datasets.FashionMNIST(DATA, download=True, train=False,
                                             transform=transform)
train_set = torch.utils.data.Subset(train_set, range(N_TRAIN))
test_set = torch.utils.data.Subset(test_set, range(N_TEST))

train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
test_loader = DataLoader(test_set, batch_size=64)


def output_label(label):
    output_mapping = {0: "T-shirt/Top", 1: "Trouser", 2: "Pullover", 3: "Dress", 4: "Coat",
                      5: "Sandal", 6: "Shirt", 7: "Sneaker", 8: "Bag", 9: "Ankle Boot"}
    input = (label.item() if type(label) is torch.Tensor else label)
    return output_mapping[input]


image, label = next(iter(train_set))
print(image.shape, image.squeeze().shape, output_label(label))

demo_loader = DataLoader(train_set, batch_size=10)
batch = next(iter(demo_loader))
images, labels = batch
print(type(images), type(labels), images.shape, labels.shape)
print(", ".join(output_label(label) for label in labels))


class FashionCNN(nn.Module):

    def __init__(self):
        super(FashionCNN, self).__init__()

        self.layer1 = nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2)
        )

        self.layer2 = nn.Sequential(
            nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2)
        )

        self.fc1 = nn.Linear(in_features=64*7*7, out_features=1000)
        self.drop = nn.Dropout2d(0.25)
        self.fc2 = nn.Linear(in_features=1000, out_features=10)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = out.view(out.size(0), -1)
        out = self.fc1(out)
        out = self.drop(out)
        out = self.fc2(out)

        return out


model = FashionCNN()
model.to(device)
same_start(model)

error = nn.CrossEntropyLoss()

learning_rate = 0.001
optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
print(model)


def evaluate():
    total = 0
    correct = 0
    model.eval()
    with torch.no_grad():
        for images, labels in test_loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            predictions = torch.max(outputs, 1)[1].to(device)
            predictions_list.append(predictions)
            labels_list.append(labels)
            correct += (predictions == labels).sum()
            total += len(labels)
    model.train()
    return correct * 100 / total


count = 0
loss_list = []
iteration_list = []
accuracy_list = []
predictions_list = []
labels_list = []

for epoch in range(EPOCHS):
    for images, labels in train_loader:
        images, labels = images.to(device), labels.to(device)

        train = images.view(-1, 1, 28, 28)

        outputs = model(train)
        loss = error(outputs, labels)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        count += 1

        if not (count % 25):
            accuracy = evaluate()
            loss_list.append(loss.data)
            iteration_list.append(count)
            accuracy_list.append(accuracy)

        if not (count % 25):
            print("Iteration: {}, Loss: {}, Accuracy: {}%".format(count, loss.data, accuracy))

class_correct = [0. for _ in range(10)]
total_correct = [0. for _ in range(10)]

model.eval()
with torch.no_grad():
    for images, labels in test_loader:
        images, labels = images.to(device), labels.to(device)
        test = images
        outputs = model(test)
        predicted = torch.max(outputs, 1)[1]
        c = (predicted == labels).squeeze()

        for i in range(len(labels)):
            label = labels[i]
            class_correct[label] += c[i].item()
            total_correct[label] += 1

for i in range(10):
    print("Accuracy of {}: {:.2f}%".format(output_label(i),
                                           class_correct[i] * 100 / total_correct[i]))

predictions_l = [predictions_list[i].tolist() for i in range(len(predictions_list))]
labels_l = [labels_list[i].tolist() for i in range(len(labels_list))]
print(len(predictions_l), len(labels_l))

accuracy = 100 * sum(class_correct) / sum(total_correct)
print(f"RESULT accuracy={accuracy:.2f} last_check={float(accuracy_list[-1]):.2f}")
