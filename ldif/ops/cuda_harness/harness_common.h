// Standalone driver for the LDIF/SIF evaluation kernels, without TensorFlow: reads a SIF v1 `.txt` and (for
// an LDIF) an `.occnet` decoder file, evaluates the original ldif2mesh kernel's grid (reference §7.4) and
// writes a GAPS `.grd` with an identity world-to-grid matrix, as the original `ldif2mesh` binary does.
//
//   ldif2grd_cuda LDIF.txt DECODER.occnet OUT.grd [-resolution R] [--cpu] [--pointwise] [--threads N]
//                 [--repeat K]
//
// --cpu runs the tiled CPU evaluator (ldif_eval_cpu.h, the TensorFlow op's CPU code) instead of the GPU;
// --pointwise runs the per-point code the CUDA kernel runs, on the CPU. Prints the timings.
// Included by ldif2grd_cuda.cu (GPU + CPU) and ldif2grd_cpu.cc (CPU only).
#ifndef LDIF_OPS_CUDA_HARNESS_HARNESS_COMMON_H_
#define LDIF_OPS_CUDA_HARNESS_HARNESS_COMMON_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../kernels/ldif_eval_core.h"
#include "../kernels/ldif_eval_cpu.h"

namespace ldif_harness {

using ldif_ops::GridSpec;
using ldif_ops::ModelLayout;
using ldif_ops::RawModel;

struct Shape {
  int element_count = 0;
  int symmetry_count = 0;
  int latent_size = 0;
  std::vector<float> constants, centers, variances, rotations, latents;
};

[[noreturn]] inline void Fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

// Parses a SIF v1 .txt file (reference §4.7); sigma is squared into a variance.
inline Shape ReadSifTxt(const std::string& path) {
  std::ifstream f(path);
  if (!f.is_open()) Fail(path, "cannot open file");
  std::string line;
  if (!std::getline(f, line)) Fail(path, "empty file");
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line != "SIF") Fail(path, "bad header: expected \"SIF\", got \"" + line.substr(0, 40) + "\"");
  if (!std::getline(f, line)) Fail(path, "truncated file: the count line is missing");
  std::istringstream counts(line);
  int e = -1, version = -1, l = -1;
  if (!(counts >> e >> version >> l)) Fail(path, "bad count line \"" + line + "\"");
  if (version != 0) Fail(path, "unsupported version " + std::to_string(version));
  if (e < 0 || l < 0) Fail(path, "negative counts");
  Shape s;
  s.element_count = e;
  s.latent_size = l;
  s.constants.resize(e);
  s.centers.resize(3 * e);
  s.variances.resize(3 * e);
  s.rotations.resize(3 * e);
  s.latents.resize(static_cast<size_t>(e) * l);
  bool seen_unflagged = false;
  for (int i = 0; i < e; ++i) {
    if (!std::getline(f, line)) {
      Fail(path, "truncated file: " + std::to_string(i) + " of " + std::to_string(e) + " rows");
    }
    std::istringstream row(line);
    std::vector<double> v;
    std::string token;
    while (row >> token) {
      char* end = nullptr;
      const double x = std::strtod(token.c_str(), &end);
      if (end == token.c_str() || *end != '\0') {
        Fail(path, "row " + std::to_string(i) + ": not a number: " + token);
      }
      if (!std::isfinite(x)) Fail(path, "row " + std::to_string(i) + " contains NaN or infinite values");
      v.push_back(x);
    }
    if (static_cast<int>(v.size()) != 11 + l) {
      Fail(path, "row " + std::to_string(i) + " has " + std::to_string(v.size()) + " values; expected " +
                     std::to_string(11 + l));
    }
    s.constants[i] = static_cast<float>(v[0]);
    for (int k = 0; k < 3; ++k) {
      s.centers[3 * i + k] = static_cast<float>(v[1 + k]);
      const float sigma = static_cast<float>(v[4 + k]);
      if (sigma < 0.0f) Fail(path, "row " + std::to_string(i) + " has a negative radius");
      s.variances[3 * i + k] = sigma * sigma;
      s.rotations[3 * i + k] = static_cast<float>(v[7 + k]);
    }
    const double flag = v[10];
    if (flag != 0.0 && flag != 1.0) Fail(path, "row " + std::to_string(i) + ": symmetry flag must be 0 or 1");
    if (flag == 1.0) {
      if (seen_unflagged) {
        Fail(path, "row " + std::to_string(i) + " is flagged symmetric after an unflagged row");
      }
      ++s.symmetry_count;
    } else {
      seen_unflagged = true;
    }
    for (int k = 0; k < l; ++k) s.latents[static_cast<size_t>(i) * l + k] = static_cast<float>(v[11 + k]);
  }
  while (std::getline(f, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      Fail(path, "more rows than the header announces");
    }
  }
  return s;
}

// Reads an .occnet file (reference §7.5): returns the flat weights and sets the hidden width.
inline std::vector<float> ReadOccnet(const std::string& path, int latent_size, int* width) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f.is_open()) Fail(path, "cannot open file");
  const int64_t bytes = static_cast<int64_t>(f.tellg());
  f.seekg(0);
  int32_t header[2] = {0, 0};
  if (bytes < 8 || !f.read(reinterpret_cast<char*>(header), 8)) Fail(path, "truncated header");
  if (header[0] != 1) {
    Fail(path, "bad header: " + std::to_string(header[0]) + " residual layers (expected 1)");
  }
  if (header[1] <= 0 || header[1] > 4096) Fail(path, "bad header: hidden width " + std::to_string(header[1]));
  *width = header[1];
  const int64_t count = ldif_ops::DecoderFloatCount(header[1], latent_size);
  if (bytes != 8 + 4 * count) {
    Fail(path, "size " + std::to_string(bytes) + " bytes does not match width " + std::to_string(header[1]) +
                   " and latent size " + std::to_string(latent_size) + " (expected " +
                   std::to_string(8 + 4 * count) + ")");
  }
  std::vector<float> flat(count);
  if (!f.read(reinterpret_cast<char*>(flat.data()), 4 * count)) Fail(path, "truncated file");
  return flat;
}

// Writes a GAPS .grd: int32 nx, ny, nz; float32[16] identity world-to-grid; values x fastest.
inline void WriteGrd(const std::string& path, const std::vector<float>& values, int resolution) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f.is_open()) Fail(path, "cannot open for writing");
    const int32_t dims[3] = {resolution, resolution, resolution};
    f.write(reinterpret_cast<const char*>(dims), sizeof(dims));
    float identity[16] = {0};
    identity[0] = identity[5] = identity[10] = identity[15] = 1.0f;
    f.write(reinterpret_cast<const char*>(identity), sizeof(identity));
    f.write(reinterpret_cast<const char*>(values.data()), sizeof(float) * values.size());
    if (!f.good()) Fail(path, "write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) Fail(path, "cannot move the written file into place");
}

// The kernel's grid (reference §7.3): p(i) = -0.75 + 1.5 (0.5 + (R - 0.5) i / R) / R.
inline GridSpec KernelGrid(int resolution) {
  GridSpec g;
  const double r = resolution;
  for (int k = 0; k < 3; ++k) {
    g.origin[k] = static_cast<float>(-0.75 + 1.5 * 0.5 / r);
    g.spacing[k] = static_cast<float>(1.5 * (r - 0.5) / (r * r));
  }
  g.nx = g.ny = g.nz = resolution;
  g.z_offset = 0;
  return g;
}

// Tiled (or pointwise) CPU evaluation of the grid with `threads` threads, rows split round-robin in blocks.
inline void EvalGridCpu(const ModelLayout& m, const std::vector<float>& block, const GridSpec& g, int threads,
                        bool pointwise, std::vector<float>* out) {
  out->assign(static_cast<size_t>(g.nx * g.ny * g.nz), 0.0f);
  const int64_t rows = g.ny * g.nz;
  std::vector<std::thread> pool;
  const int64_t chunk = 4;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t]() {
      for (int64_t r0 = t * chunk; r0 < rows; r0 += threads * chunk) {
        const int64_t r1 = std::min(rows, r0 + chunk);
        if (pointwise) {
          ldif_ops::EvalGridPointwiseRange(m, block.data(), g, r0 * g.nx, r1 * g.nx, out->data());
        } else {
          ldif_ops::EvalGridRange(m, block.data(), g, r0 * g.nx, r1 * g.nx, out->data());
        }
      }
    });
  }
  for (auto& th : pool) th.join();
}

struct Options {
  std::string txt, occnet, out;
  int resolution = 256;
  bool cpu = false;
  bool pointwise = false;
  int threads = 0;
  int repeat = 1;
};

inline Options ParseArgs(int argc, char** argv, bool has_gpu) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(std::string("missing value after ") + name);
      return argv[++i];
    };
    if (a == "-resolution" || a == "--resolution") {
      o.resolution = std::stoi(value("-resolution"));
    } else if (a == "--cpu") {
      o.cpu = true;
    } else if (a == "--pointwise") {
      o.cpu = true;
      o.pointwise = true;
    } else if (a == "--threads") {
      o.threads = std::stoi(value("--threads"));
    } else if (a == "--repeat") {
      o.repeat = std::max(1, std::stoi(value("--repeat")));
    } else if (!a.empty() && a[0] == '-') {
      throw std::runtime_error("unknown flag " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 3) {
    throw std::runtime_error(
        "usage: ldif2grd LDIF.txt DECODER.occnet OUT.grd [-resolution R] [--cpu] [--pointwise] [--threads N] "
        "[--repeat K]");
  }
  o.txt = positional[0];
  o.occnet = positional[1];
  o.out = positional[2];
  if (o.resolution < 1 || o.resolution > 1024) throw std::runtime_error("resolution must be in [1, 1024]");
  if (!has_gpu) o.cpu = true;
  if (o.threads <= 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

// Loads and packs the model named by the options.
inline ModelLayout LoadModel(const Options& o, std::vector<float>* block) {
  Shape s = ReadSifTxt(o.txt);
  std::vector<float> decoder;
  int width = 0;
  if (s.latent_size > 0) decoder = ReadOccnet(o.occnet, s.latent_size, &width);
  RawModel raw;
  raw.element_count = s.element_count;
  raw.symmetry_count = s.symmetry_count;
  raw.latent_size = s.latent_size;
  raw.width = width;
  raw.constants = s.constants.data();
  raw.centers = s.centers.data();
  raw.variances = s.variances.data();
  raw.rotations = s.rotations.data();
  raw.latents = s.latents.data();
  raw.decoder = decoder.data();
  const std::string problem = ldif_ops::ValidateRawModel(raw, static_cast<int64_t>(decoder.size()));
  if (!problem.empty()) Fail(o.txt, problem);
  return ldif_ops::PackModel(raw, block);
}

inline double Millis(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace ldif_harness

#endif  // LDIF_OPS_CUDA_HARNESS_HARNESS_COMMON_H_
