"""bench/crypt peer: Python cryptography's Fernet, encrypt then decrypt N values of LEN bytes."""
import sys, time
from cryptography.fernet import Fernet
n = int(sys.argv[1]); length = int(sys.argv[2])
f = Fernet(Fernet.generate_key())
value = b"v" * length
c0 = time.thread_time()
t0 = time.perf_counter()
tokens = [f.encrypt(value) for _ in range(n)]
t1 = time.perf_counter()
total = sum(len(f.decrypt(t)) for t in tokens)
t2 = time.perf_counter()
c2 = time.thread_time()
assert total == n * length
import cryptography
print(f"count={n} encrypt_s={t1 - t0:.3f} decrypt_s={t2 - t1:.3f} total_s={t2 - t0:.3f} cpu_s={c2 - c0:.3f} version={cryptography.__version__}")
