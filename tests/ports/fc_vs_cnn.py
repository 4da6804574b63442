"""The "FC2Layer vs CNN" lesson with pixel permutation (the convnet notebook of a well-known deep
learning course; /work/shared/seed-networks.md section 4), in our words with the same API calls:
two networks with about 6,400 parameters, nll_loss and SGD(momentum=0.5), then the same training
on images whose pixels are shuffled by one fixed permutation.

Shortened by the environment (see tests/test_ports.py): PORTS_DATA, PORTS_TRAIN, PORTS_TEST,
PORTS_EPOCHS, PORTS_INIT.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms

DATA = os.environ.get("PORTS_DATA", "../data")
N_TRAIN = int(os.environ.get("PORTS_TRAIN", 60000))
N_TEST = int(os.environ.get("PORTS_TEST", 10000))
EPOCHS = int(os.environ.get("PORTS_EPOCHS", 1))


def same_start(model, tag):
    """Start from the weights in PORTS_INIT (one file per tag), or write them there (the test
    gives torch's run's initial weights to tinyconv's run); a no-op when PORTS_INIT is unset."""
    path = os.environ.get("PORTS_INIT")
    path = path and path.replace(".npz", f"-{tag}.npz")
    if path and os.path.exists(path):
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
    elif path:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


torch.manual_seed(0)
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

input_size = 28 * 28   # images are 28x28 pixels
output_size = 10      # there are 10 classes

train_set = datasets.MNIST(DATA, train=True, download=True,
                           transform=transforms.Compose([
                               transforms.ToTensor(),
                               transforms.Normalize((0.1307,), (0.3081,))
                           ]))
test_set = datasets.MNIST(DATA, train=False, transform=transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.1307,), (0.3081,))
]))
train_loader = torch.utils.data.DataLoader(
    torch.utils.data.Subset(train_set, range(N_TRAIN)), batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(
    torch.utils.data.Subset(test_set, range(N_TEST)), batch_size=1000, shuffle=True)

plt.figure(figsize=(16, 6))
for i in range(10):
    plt.subplot(2, 5, i + 1)
    image, _ = train_loader.dataset.__getitem__(i)
    plt.imshow(image.squeeze().numpy(), cmap="gray")
    plt.axis("off")
plt.savefig("samples.png")
plt.close()


class FC2Layer(nn.Module):
    def __init__(self, input_size, n_hidden, output_size):
        super(FC2Layer, self).__init__()
        self.input_size = input_size
        self.network = nn.Sequential(
            nn.Linear(input_size, n_hidden),
            nn.ReLU(),
            nn.Linear(n_hidden, n_hidden),
            nn.ReLU(),
            nn.Linear(n_hidden, output_size),
            nn.LogSoftmax(dim=1)
        )

    def forward(self, x):
        x = x.view(-1, self.input_size)
        return self.network(x)


class CNN(nn.Module):
    def __init__(self, input_size, n_feature, output_size):
        super(CNN, self).__init__()
        self.n_feature = n_feature
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=n_feature, kernel_size=5)
        self.conv2 = nn.Conv2d(n_feature, n_feature, kernel_size=5)
        self.fc1 = nn.Linear(n_feature * 4 * 4, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x, verbose=False):
        x = self.conv1(x)
        x = F.relu(x)
        x = F.max_pool2d(x, kernel_size=2)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, kernel_size=2)
        x = x.view(-1, self.n_feature * 4 * 4)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc2(x)
        x = F.log_softmax(x, dim=1)
        return x


def get_n_params(model):
    np = 0
    for p in list(model.parameters()):
        np += p.nelement()
    return np


accuracy_list = []


def train(epoch, model, perm=torch.arange(0, 784).long()):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)

        # permute pixels
        data = data.view(-1, 28 * 28)
        data = data[:, perm]
        data = data.view(-1, 1, 28, 28)

        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 100 == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def test(model, perm=torch.arange(0, 784).long()):
    model.eval()
    test_loss = 0
    correct = 0
    for data, target in test_loader:
        data, target = data.to(device), target.to(device)

        # permute pixels
        data = data.view(-1, 28 * 28)
        data = data[:, perm]
        data = data.view(-1, 1, 28, 28)
        output = model(data)
        test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
        pred = output.data.max(1, keepdim=True)[1]  # index of the max log-probability
        correct += pred.eq(target.data.view_as(pred)).cpu().sum().item()

    test_loss /= len(test_loader.dataset)
    accuracy = 100. * correct / len(test_loader.dataset)
    accuracy_list.append(accuracy)
    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset), accuracy))
    return accuracy


results = {}
n_hidden = 8  # number of hidden units
n_features = 6  # number of feature maps

model_fnn = FC2Layer(input_size, n_hidden, output_size)
model_fnn.to(device)
same_start(model_fnn, "fc")
optimizer = optim.SGD(model_fnn.parameters(), lr=0.01, momentum=0.5)
print('Number of parameters: {}'.format(get_n_params(model_fnn)))
for epoch in range(0, EPOCHS):
    train(epoch, model_fnn)
results["fc"] = test(model_fnn)

model_cnn = CNN(input_size, n_features, output_size)
model_cnn.to(device)
same_start(model_cnn, "cnn")
optimizer = optim.SGD(model_cnn.parameters(), lr=0.01, momentum=0.5)
print('Number of parameters: {}'.format(get_n_params(model_cnn)))
for epoch in range(0, EPOCHS):
    train(epoch, model_cnn)
results["cnn"] = test(model_cnn)

# The lesson: shuffle the pixels (the same way for every image) and train again.
perm = torch.randperm(784)
plt.figure(figsize=(8, 8))
for i in range(10):
    image, _ = train_loader.dataset.__getitem__(i)
    image_perm = image.view(-1, 28 * 28).clone()
    image_perm = image_perm[:, perm]
    image_perm = image_perm.view(-1, 1, 28, 28)
    plt.subplot(4, 5, i + 1)
    plt.imshow(image.squeeze().numpy(), cmap="gray")
    plt.axis("off")
    plt.subplot(4, 5, i + 11)
    plt.imshow(image_perm.squeeze().numpy(), cmap="gray")
    plt.axis("off")
plt.savefig("permuted.png")
plt.close()

model_cnn = CNN(input_size, n_features, output_size)
model_cnn.to(device)
same_start(model_cnn, "cnn_permuted")
optimizer = optim.SGD(model_cnn.parameters(), lr=0.01, momentum=0.5)
for epoch in range(0, EPOCHS):
    train(epoch, model_cnn, perm)
results["cnn_permuted"] = test(model_cnn, perm)

model_fnn = FC2Layer(input_size, n_hidden, output_size)
model_fnn.to(device)
same_start(model_fnn, "fc_permuted")
optimizer = optim.SGD(model_fnn.parameters(), lr=0.01, momentum=0.5)
for epoch in range(0, EPOCHS):
    train(epoch, model_fnn, perm)
results["fc_permuted"] = test(model_fnn, perm)

print("RESULT accuracy={:.2f} ".format(results["cnn"])
      + " ".join("{}={:.2f}".format(k, v) for k, v in results.items()))
