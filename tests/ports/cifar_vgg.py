"""A CIFAR-10 VGG recipe (the VGG model of the well-known pytorch-cifar repository and the
course labs built on it; /work/shared/seed-networks.md section 5), in our words with the same
API calls: a VGG built from a cfg list (3x3 Conv2d + BatchNorm2d + ReLU, MaxPool2d(2, 2),
AvgPool2d(1, 1), Linear), RandomCrop(32, padding=4) + RandomHorizontalFlip, SGD with momentum
and weight decay, MultiStepLR, the class distribution, a confusion matrix, and the best
checkpoint kept in ./checkpoint/ckpt.pth and reloaded.

--net picks the cfg; the test uses "VGG-mini", a narrow cfg of the same form, so that a run
takes seconds on a CPU. Shortened by the environment (see tests/test_ports.py): PORTS_DATA,
PORTS_TRAIN, PORTS_TEST, PORTS_EPOCHS, PORTS_INIT.
"""

import argparse
import os

import numpy as np
import torch
import torch.backends.cudnn as cudnn
import torch.nn as nn
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms

DATA = os.environ.get("PORTS_DATA", "./data")
N_TRAIN = int(os.environ.get("PORTS_TRAIN", 50000))
N_TEST = int(os.environ.get("PORTS_TEST", 10000))
EPOCHS = int(os.environ.get("PORTS_EPOCHS", 30))

cfg = {
    'VGG11': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG13': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG-mini': [16, 'M', 32, 'M', 32, 'M', 64, 'M', 64, 'M'],
}


def same_start(model):
    """Start from the weights in PORTS_INIT, or write them there (the test gives torch's run's
    initial weights to tinyconv's run); does nothing when PORTS_INIT is unset."""
    path = os.environ.get("PORTS_INIT")
    if path and os.path.exists(path):
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
    elif path:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


class VGG(nn.Module):
    def __init__(self, vgg_name):
        super(VGG, self).__init__()
        self.features = self._make_layers(cfg[vgg_name])
        self.classifier = nn.Linear(cfg[vgg_name][-2], 10)

    def forward(self, x):
        out = self.features(x)
        out = out.view(out.size(0), -1)
        out = self.classifier(out)
        return out

    def _make_layers(self, cfg):
        layers = []
        in_channels = 3
        for x in cfg:
            if x == 'M':
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [nn.Conv2d(in_channels, x, kernel_size=3, padding=1),
                           nn.BatchNorm2d(x),
                           nn.ReLU(inplace=True)]
                in_channels = x
        layers += [nn.AvgPool2d(kernel_size=1, stride=1)]
        return nn.Sequential(*layers)


parser = argparse.ArgumentParser(description='PyTorch CIFAR10 Training')
parser.add_argument('--lr', default=0.05, type=float, help='learning rate')
parser.add_argument('--net', default='VGG11', choices=sorted(cfg), help='network')
parser.add_argument('--resume', '-r', action='store_true', help='resume from checkpoint')
args = parser.parse_args()

torch.manual_seed(0)
device = 'cuda' if torch.cuda.is_available() else 'cpu'
best_acc = 0  # best test accuracy
start_epoch = 0  # start from epoch 0 or last checkpoint epoch

# Data
print('==> Preparing data..')
transform_train = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])

transform_test = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])

trainset = torchvision.datasets.CIFAR10(
    root=DATA, train=True, download=True, transform=transform_train)
counts = np.bincount(np.array(trainset.targets), minlength=10)
print('class distribution:', dict(zip(trainset.classes, counts.tolist())))
trainset = torch.utils.data.Subset(trainset, range(N_TRAIN))
trainloader = torch.utils.data.DataLoader(
    trainset, batch_size=128, shuffle=True, num_workers=2)

testset = torchvision.datasets.CIFAR10(
    root=DATA, train=False, download=True, transform=transform_test)
testset = torch.utils.data.Subset(testset, range(N_TEST))
testloader = torch.utils.data.DataLoader(
    testset, batch_size=100, shuffle=False, num_workers=2)

images, labels = next(iter(trainloader))
grid = torchvision.utils.make_grid(images[:16], nrow=8, normalize=True)
print('sample grid:', tuple(grid.shape))

# Model
print('==> Building model..')
net = VGG(args.net)
net = net.to(device)
same_start(net)
if device == 'cuda':
    cudnn.benchmark = True

if args.resume:
    # Load checkpoint.
    print('==> Resuming from checkpoint..')
    assert os.path.isdir('checkpoint'), 'Error: no checkpoint directory found!'
    checkpoint = torch.load('./checkpoint/ckpt.pth')
    net.load_state_dict(checkpoint['net'])
    best_acc = checkpoint['acc']
    start_epoch = checkpoint['epoch']

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=args.lr,
                      momentum=0.9, weight_decay=5e-4)
scheduler = optim.lr_scheduler.MultiStepLR(
    optimizer, milestones=[EPOCHS // 2, EPOCHS * 3 // 4], gamma=0.1)


# Training
def train(epoch):
    print('\nEpoch: %d' % epoch)
    net.train()
    train_loss = 0
    correct = 0
    total = 0
    for batch_idx, (inputs, targets) in enumerate(trainloader):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()

        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    print('Loss: %.3f | Acc: %.3f%% (%d/%d)'
          % (train_loss/(batch_idx+1), 100.*correct/total, correct, total))


def test(epoch):
    global best_acc
    net.eval()
    test_loss = 0
    correct = 0
    total = 0
    confusion = np.zeros((10, 10), dtype=np.int64)
    with torch.no_grad():
        for batch_idx, (inputs, targets) in enumerate(testloader):
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = net(inputs)
            loss = criterion(outputs, targets)

            test_loss += loss.item()
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets).sum().item()
            np.add.at(confusion, (targets.cpu().numpy(), predicted.cpu().numpy()), 1)
    print('Test Loss: %.3f | Acc: %.3f%% (%d/%d)'
          % (test_loss/(batch_idx+1), 100.*correct/total, correct, total))

    # Save checkpoint.
    acc = 100.*correct/total
    if acc > best_acc:
        print('Saving..')
        state = {
            'net': net.state_dict(),
            'acc': acc,
            'epoch': epoch,
        }
        if not os.path.isdir('checkpoint'):
            os.mkdir('checkpoint')
        torch.save(state, './checkpoint/ckpt.pth')
        best_acc = acc
    return acc, confusion


for epoch in range(start_epoch, start_epoch+EPOCHS):
    train(epoch)
    acc, confusion = test(epoch)
    scheduler.step()
print('confusion matrix (rows: true class):\n', confusion)

checkpoint = torch.load('./checkpoint/ckpt.pth', weights_only=True)
net.load_state_dict(checkpoint['net'])
best, _ = test(checkpoint['epoch'])
assert abs(best - checkpoint['acc']) < 1e-6, (best, checkpoint['acc'])
print(f"RESULT accuracy={best:.2f} last={acc:.2f}")
