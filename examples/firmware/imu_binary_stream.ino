/*
 * imu_binary_stream.ino — IMU firmware for Reflex: streams 6-axis samples at a fixed rate in
 * Reflex's `binary` wire format (docs/wire-formats.md).
 *
 * Hardware: any Arduino-compatible board (AVR, SAMD, RP2040, ESP32, Teensy, ...) with an
 * MPU-6050 on I²C (SDA/SCL, address 0x68 with AD0 low). Set USE_MPU6050 to 0 to stream a
 * synthetic signal instead (no sensor needed), or replace readImu() with your own sensor read.
 *
 * Frame, one per sample, 33 bytes for 6 channels:
 *
 *   A5 5A | n: u8 | counter: u32 LE | n × f32 LE | crc: u16 LE
 *
 *   - n        number of values (6 here)
 *   - counter  sample index, +1 per sample period; a gap tells Reflex how many samples were lost
 *   - values   ax ay az in m/s², gx gy gz in deg/s (IEEE-754 binary32, little-endian)
 *   - crc      CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout) over
 *              the bytes from n through the last data byte (sync bytes excluded).
 *              Check value: crc16("123456789") == 0x29B1.
 *
 * Units: acceleration in m/s² (not g) and angular rate in deg/s, the units of Reflex's bundled
 * recordings and default config; if your model was trained on g, convert here or in the
 * config's [window] mean/std.
 *
 * Matching Reflex config (reflexd on the robot host):
 *
 *   [source]
 *   kind = "serial"
 *   path = "/dev/ttyACM0"      # or /dev/ttyUSB0 for a USB-UART bridge; see config/serial-imu.toml
 *   baud_rate = 115200         # = SERIAL_BAUD below (ignored by native-USB boards)
 *   format = "binary"
 *   channels = 6               # ax ay az (m/s²), gx gy gz (deg/s)
 *
 *   [window]
 *   length = 128               # 0.64 s at 200 Hz
 *   hop = 8                    # 25 predictions/s at 200 Hz
 *
 * Bandwidth: 33 bytes × 200 Hz = 6600 bytes/s = 66 kbit/s on the wire (10 bits per byte with
 * 8N1), comfortably inside 115200 baud. At 400 Hz use 230400 baud or faster.
 *
 * The same bytes come out of reflex_codecs::encode::binary (crates/reflex-codecs/src/encode.rs)
 * and of examples/firmware/stream_recording.py --format binary, which streams a bundled
 * recording the same way when there is no hardware at hand.
 */

#include <Arduino.h>
#include <Wire.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#define USE_MPU6050 1                    // 0: synthetic signal, no sensor needed

static const uint32_t SERIAL_BAUD = 115200;
static const uint32_t SAMPLE_RATE_HZ = 200;
static const uint32_t PERIOD_US = 1000000UL / SAMPLE_RATE_HZ;   // 5000 µs
static const uint8_t CHANNELS = 6;
static const uint32_t MAX_CATCH_UP = 4;         // periods late before missed samples are skipped

// MPU-6050 registers (see the MPU-6000/6050 register map, rev. 4.2)
static const uint8_t MPU_ADDR = 0x68;            // 0x69 when AD0 is high
static const uint8_t REG_SMPLRT_DIV = 0x19;
static const uint8_t REG_CONFIG = 0x1A;
static const uint8_t REG_GYRO_CONFIG = 0x1B;
static const uint8_t REG_ACCEL_CONFIG = 0x1C;
static const uint8_t REG_ACCEL_XOUT_H = 0x3B;    // 14 bytes: accel xyz, temperature, gyro xyz
static const uint8_t REG_PWR_MGMT_1 = 0x6B;

// Full-scale ranges: ±8 g (4096 LSB/g) and ±2000 deg/s (16.4 LSB/(deg/s)). A foot or shank
// during walking sees several g and several hundred deg/s; ±2 g / ±250 deg/s would clip.
static const float ACCEL_LSB_PER_G = 4096.0f;
static const float GYRO_LSB_PER_DPS = 16.4f;
static const float STANDARD_GRAVITY = 9.80665f;  // m/s² per g

// The frame is built by copying the float's bytes, which assumes IEEE-754 binary32 in
// little-endian order: true for every Arduino target (AVR, ARM Cortex-M, Xtensa, RISC-V).
static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");

static const size_t FRAME_LEN = 2 + 1 + 4 + 4 * CHANNELS + 2;    // 33 bytes

// ---------------------------------------------------------------------------------------------
// CRC-16/CCITT-FALSE, bitwise (no table: 2 bytes of RAM instead of 512, and at 31 bytes per
// frame it takes a few tens of microseconds even on a 16 MHz AVR).
// ---------------------------------------------------------------------------------------------

uint16_t crc16CcittFalse(const uint8_t *data, size_t len) {
  uint16_t crc = 0xFFFF;                  // init
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)data[i] << 8;        // MSB first: no reflection
    for (uint8_t bit = 0; bit < 8; bit++) {
      crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
  }
  return crc;                             // no final xor
}

// ---------------------------------------------------------------------------------------------
// Sensor
// ---------------------------------------------------------------------------------------------

#if USE_MPU6050
static void mpuWrite(uint8_t reg, uint8_t value) {
  Wire.beginTransmission(MPU_ADDR);
  Wire.write(reg);
  Wire.write(value);
  Wire.endTransmission();
}

static void imuBegin() {
  Wire.begin();
  Wire.setClock(400000);                  // 400 kHz: the 14-byte burst read takes ~0.4 ms
  mpuWrite(REG_PWR_MGMT_1, 0x01);         // wake up, clock from the X gyro PLL
  delay(100);
  mpuWrite(REG_CONFIG, 0x03);             // DLPF ~44 Hz (accel) / 42 Hz (gyro): anti-aliasing for 200 Hz
  mpuWrite(REG_SMPLRT_DIV, 4);            // 1 kHz / (1 + 4) = 200 Hz internal sample rate
  mpuWrite(REG_GYRO_CONFIG, 0x18);        // FS_SEL = 3: ±2000 deg/s
  mpuWrite(REG_ACCEL_CONFIG, 0x10);       // AFS_SEL = 2: ±8 g
}

static int16_t be16(const uint8_t *p) {
  return (int16_t)(((uint16_t)p[0] << 8) | p[1]);   // the MPU-6050 is big-endian
}

// Fills out[0..5] with ax ay az (m/s²) and gx gy gz (deg/s). Returns false if the read failed.
static bool readImu(float out[6]) {
  uint8_t raw[14];
  Wire.beginTransmission(MPU_ADDR);
  Wire.write(REG_ACCEL_XOUT_H);
  if (Wire.endTransmission(false) != 0) return false;    // repeated start
  if (Wire.requestFrom(MPU_ADDR, (uint8_t)14) != 14) return false;
  for (uint8_t i = 0; i < 14; i++) raw[i] = Wire.read();
  for (uint8_t i = 0; i < 3; i++) {
    out[i] = be16(&raw[2 * i]) / ACCEL_LSB_PER_G * STANDARD_GRAVITY;   // bytes 0..5: accel
    out[3 + i] = be16(&raw[8 + 2 * i]) / GYRO_LSB_PER_DPS;             // bytes 8..13: gyro
  }                                                                     // (6..7: temperature)
  return true;
}
#else
static void imuBegin() {}

// >>> Put your own sensor read here. <<< Fill out[0..5] with ax ay az (m/s²) and gx gy gz
// (deg/s) and return true, or return false when no fresh reading is available.
// Until then: gravity on z plus a 1 Hz "gait-like" swing, so the whole chain can be tested.
static bool readImu(float out[6]) {
  const float t = micros() * 1e-6f;
  const float s = sinf(2.0f * (float)M_PI * 1.0f * t);
  out[0] = 2.0f * s;
  out[1] = 0.0f;
  out[2] = STANDARD_GRAVITY + 1.0f * s;
  out[3] = 0.0f;
  out[4] = 150.0f * s;
  out[5] = 0.0f;
  return true;
}
#endif

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

static void sendFrame(uint32_t counter, const float values[CHANNELS]) {
  uint8_t frame[FRAME_LEN];
  frame[0] = 0xA5;                        // sync
  frame[1] = 0x5A;
  frame[2] = CHANNELS;                    // n
  frame[3] = (uint8_t)(counter);          // counter, little-endian
  frame[4] = (uint8_t)(counter >> 8);
  frame[5] = (uint8_t)(counter >> 16);
  frame[6] = (uint8_t)(counter >> 24);
  memcpy(&frame[7], values, 4 * CHANNELS); // n × f32, little-endian on every Arduino target
  const uint16_t crc = crc16CcittFalse(&frame[2], FRAME_LEN - 2 - 2);   // n .. last data byte
  frame[FRAME_LEN - 2] = (uint8_t)(crc);  // crc, little-endian
  frame[FRAME_LEN - 1] = (uint8_t)(crc >> 8);
  Serial.write(frame, FRAME_LEN);
}

// ---------------------------------------------------------------------------------------------
// Main loop: a fixed 200 Hz schedule timed with micros()
// ---------------------------------------------------------------------------------------------

static uint32_t nextDueUs;                // when the next sample is due
static uint32_t sampleCounter = 0;        // sample index: one per period, sent or not

void setup() {
  pinMode(LED_BUILTIN, OUTPUT);
  Serial.begin(SERIAL_BAUD);

  // Self-check of the CRC against the catalogue check value; blink fast forever if it fails
  // (a compiler or port problem: every frame would be rejected by Reflex).
  if (crc16CcittFalse((const uint8_t *)"123456789", 9) != 0x29B1) {
    for (;;) {
      digitalWrite(LED_BUILTIN, !digitalRead(LED_BUILTIN));
      delay(100);
    }
  }

  imuBegin();
  nextDueUs = micros();
}

void loop() {
  // Unsigned subtraction then a signed test survives the micros() wrap every ~71.6 minutes.
  const uint32_t now = micros();
  if ((int32_t)(now - nextDueUs) < 0) return;           // not yet

  // A short hiccup (up to MAX_CATCH_UP periods) is caught up by sampling back to back. Far
  // behind (a blocked serial port, a long I²C stall)? Skip the missed periods rather than
  // bursting them out; counting them keeps the counter honest, and Reflex reports them as lost.
  const uint32_t late = (now - nextDueUs) / PERIOD_US;
  if (late > MAX_CATCH_UP) {
    sampleCounter += late;
    nextDueUs += late * PERIOD_US;
  }
  nextDueUs += PERIOD_US;                 // absolute schedule: no drift from loop overhead

  float values[CHANNELS];
  if (readImu(values)) {
    sendFrame(sampleCounter, values);
    digitalWrite(LED_BUILTIN, (sampleCounter / SAMPLE_RATE_HZ) & 1);   // 0.5 Hz heartbeat
  }
  sampleCounter++;                        // a failed read is a lost sample, not a repeated one
}
