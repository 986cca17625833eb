"""The PyTorch oracle's expansion with lesa's eigenvector sign rule (largest-magnitude entry positive).

    PYTHONPATH=python python bench/oracle_lesa_signs.py CKPT OUT SEED   (then python -m lesa_py.eval OUT --text ... --max-tokens 1024)
"""
import sys, torch
sys.path.insert(0, "python")
from lesa_py.testing import oracle
orig = oracle.decompose
def decompose_lesa_signs(Ws):
    U, S, Vs = orig(Ws)
    # lesa's addon rule: each singular vector's largest-magnitude entry positive
    idx = U.abs().argmax(dim=0)
    sign = torch.sign(U[idx, torch.arange(U.shape[1])])
    sign[sign == 0] = 1
    return U * sign, S, [V * sign[:, None] for V in Vs]
oracle.decompose = decompose_lesa_signs
oracle.expand(sys.argv[1], sys.argv[2], 45, epochs=3, seed=int(sys.argv[3]), fill="layer0")
