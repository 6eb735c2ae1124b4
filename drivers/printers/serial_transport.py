"""Serial (RS-232 / USB-serial) printers through python-escpos ``Serial``.

python-escpos opens the port without a write timeout, so with hardware flow
control an offline printer blocks the writer forever; here it is always set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import serial
from escpos.exceptions import DeviceNotFoundError

from drivers.errors import ConfigError
from drivers.printers.transport import DEFAULT_WRITE_TIMEOUT, PrinterTransport, fail

if TYPE_CHECKING:
    from drivers.printers.escpos_links import HardenedSerial

FLOW_CONTROLS = ("none", "rtscts", "dsrdtr", "xonxoff")
PARITIES = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}


class SerialTransport(PrinterTransport):
    scheme = "serial"

    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        flow: str = "dsrdtr",
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ) -> None:
        super().__init__(write_timeout=write_timeout)
        if flow not in FLOW_CONTROLS:
            raise ConfigError(f"flow must be one of {FLOW_CONTROLS}")
        if parity.upper() not in PARITIES:
            raise ConfigError(f"parity must be one of {sorted(PARITIES)}")
        self.path, self.baudrate, self.bytesize = path, int(baudrate), int(bytesize)
        self.parity, self.stopbits, self.flow = PARITIES[parity.upper()], stopbits, flow
        self.escpos: HardenedSerial | None = None

    @property
    def is_open(self) -> bool:
        return bool(self.escpos is not None and self.escpos._device)

    @property
    def nominal_bytes_per_s(self) -> float:
        """The line's speed: each byte takes a start bit, its data bits, a parity bit if any, the stop bits."""
        parity_bits = 0 if self.parity == serial.PARITY_NONE else 1
        return self.baudrate / (1 + self.bytesize + parity_bits + float(self.stopbits))

    def _link(self) -> HardenedSerial:
        if self.escpos is None:
            raise fail(f"{self.describe()} is not open")
        return self.escpos

    def _port(self) -> serial.Serial:
        port = self._link().device
        if port is None:
            raise fail(f"{self.describe()} is not open")
        return port

    def _open(self) -> None:
        # imported on first open: python-escpos's printer classes load Pillow, qrcode and PyYAML
        from drivers.printers.escpos_links import HardenedSerial

        self.escpos = HardenedSerial(
            devfile=self.path,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            timeout=0.5,
            xonxoff=self.flow == "xonxoff",
            dsrdtr=self.flow == "dsrdtr",
            rtscts=self.flow == "rtscts",
            write_timeout=self.write_timeout,
        )
        try:
            self.escpos.open()
        except DeviceNotFoundError as error:
            self.escpos = None
            raise fail(f"cannot open {self.describe()}", error) from error

    def _write(self, data: bytes) -> None:
        try:
            self._link()._raw(data)
        except serial.SerialTimeoutException as error:
            raise fail(f"write to {self.describe()} timed out", error, timed_out=True) from error
        except (serial.SerialException, OSError) as error:
            self.close()
            raise fail(f"write to {self.describe()} failed", error) from error

    def _read_chunk(self, timeout: float) -> bytes:
        port = self._port()
        try:
            port.timeout = timeout
            return port.read(max(1, min(64, port.in_waiting)))
        except (serial.SerialException, OSError) as error:
            self.close()
            raise fail(f"read from {self.describe()} failed", error) from error

    def discard_input(self) -> None:
        self._inbox.clear()
        if self.is_open:
            try:
                self._port().reset_input_buffer()
            except (serial.SerialException, OSError) as error:
                self.close()
                raise fail(f"{self.describe()} failed", error) from error

    def describe(self) -> str:
        return f"serial://{self.path}?baudrate={self.baudrate}"
