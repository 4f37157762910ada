"""SkyWater SKY130 ReRAM behind its access transistor: PDK operating points, compliance, the word-line knob,
program-and-verify through the gate, and the Verilog-A export. Writes ``<out>/reram_sky130.json`` and figures."""

from imcphys.experiments import reram_sky130, script

if __name__ == "__main__":
    script(reram_sky130.run)
