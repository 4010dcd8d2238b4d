"""Starts the ranks of a DistributedDataParallel run with the variables torchrun gives them.

For where torchrun does not run: Debian 12's torch 1.13 on Python 3.11 stops inside torchrun's
elastic agent before it starts any rank (`AttributeError: 'NoneType' object has no attribute
'get'`). DDP itself works there; it only needs each rank started with MASTER_ADDR, MASTER_PORT,
RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE, which is what this does, with torchrun's flags
for a static rendezvous:

    python3 launch.py --nproc-per-node 2 train_ddp.py --epochs 1          # 2 ranks on this machine
    # 2 machines, 1 rank each: the same command on each, with its own --node-rank
    python3 launch.py --nnodes 2 --node-rank 0 --nproc-per-node 1 \\
        --master-addr 10.0.0.1 --master-port 29500 train_ddp.py --epochs 1

The ranks run with this Python. When one fails, the others on this machine are stopped and this
exits with its code; SIGINT and SIGTERM are passed on to them.
"""

import argparse
import os
import signal
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description="Starts DDP ranks as torchrun would (static rendezvous).")
    parser.add_argument("--nnodes", type=int, default=1, help="machines taking part (default: 1)")
    parser.add_argument("--node-rank", type=int, default=0, help="this machine's place among them, from 0")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="ranks on this machine (default: 1)")
    parser.add_argument("--master-addr", default="127.0.0.1", help="the address of node 0 (default: 127.0.0.1)")
    parser.add_argument("--master-port", type=int, default=29500, help="a free port on node 0 (default: 29500)")
    parser.add_argument("script", help="the training script, e.g. train_ddp.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args()
    if not (args.nnodes >= 1 and 0 <= args.node_rank < args.nnodes and args.nproc_per_node >= 1):
        parser.error("need --nnodes >= 1, 0 <= --node-rank < --nnodes and --nproc-per-node >= 1")

    world = args.nnodes * args.nproc_per_node
    children = []
    for local in range(args.nproc_per_node):
        env = dict(
            os.environ,
            MASTER_ADDR=args.master_addr,
            MASTER_PORT=str(args.master_port),
            WORLD_SIZE=str(world),
            RANK=str(args.node_rank * args.nproc_per_node + local),
            LOCAL_RANK=str(local),
            LOCAL_WORLD_SIZE=str(args.nproc_per_node),
            GROUP_RANK=str(args.node_rank),
        )
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        children.append(subprocess.Popen([sys.executable, args.script, *args.args], env=env))

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # Wait for all; the first that fails stops the others, which would wait for it forever.
    while True:
        codes = [child.poll() for child in children]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
            return failed[0] if failed[0] > 0 else 128 - failed[0]
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
