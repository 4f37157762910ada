"""Program-and-verify optimised by gradient (rich schedule vs random search; grid search refined by gradient),
per device family, judged in exact mode on a fresh population: writes OUT/optimize_write_verify.json + figures."""

from imcphys.experiments import optimize_write_verify, script

if __name__ == "__main__":
    script(optimize_write_verify.run)
