"""attrib.lds vs numpy on 100 subsets x 50 targets x 60,000 training examples (one process)."""
import time
import numpy as np
import attrib

m, t, n = 100, 50, 60000
r = np.random.default_rng(0)
masks = r.random((m, n)) > 0.01
scores = r.normal(size=(t, n))
outputs = -(~masks).astype(float) @ scores.T + r.normal(size=(m, t))
base = np.zeros(t)

def rank(a):
    o = np.argsort(a, kind="stable"); rk = np.empty(len(a)); rk[o] = np.arange(len(a)); return rk

def np_lds():
    pred = base[None, :] - (~masks).astype(float) @ scores.T   # [m, t]
    per = [np.corrcoef(rank(outputs[:, j]), rank(pred[:, j]))[0, 1] for j in range(t)]
    return float(np.mean(per))

t0 = time.perf_counter(); a = attrib.lds(scores, masks, outputs, base=base); t1 = time.perf_counter()
b = np_lds(); t2 = time.perf_counter()
print(f"attrib.lds {t1-t0:.3f} s  lds={a['lds']:.6f} | numpy {t2-t1:.3f} s  lds={b:.6f}")
