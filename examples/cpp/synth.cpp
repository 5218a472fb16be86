// A synthesizer host without Python: load the exported file, make a sound of a label, write a WAV.
//
//   synth MODEL.ts LABEL [SEED] [SPREAD] [OUT.wav]
//
// What a plug-in does in its audio thread's neighbour: one call per new sound. The file carries
// both decoders, the codec, the label statistics and Griffin-Lim (docs/exporting.md).
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>

namespace {

void write_wav(const std::string& path, const torch::Tensor& audio, int64_t rate) {
  const torch::Tensor samples = audio.contiguous().to(torch::kFloat32);
  const float* x = samples.data_ptr<float>();
  const uint32_t n = static_cast<uint32_t>(samples.numel());
  std::ofstream f(path, std::ios::binary);
  auto u32 = [&f](uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&f](uint16_t v) { f.write(reinterpret_cast<const char*>(&v), 2); };
  f.write("RIFF", 4); u32(36 + 2 * n); f.write("WAVE", 4);  // 16-bit PCM, mono
  f.write("fmt ", 4); u32(16); u16(1); u16(1); u32(static_cast<uint32_t>(rate));
  u32(static_cast<uint32_t>(rate * 2)); u16(2); u16(16);
  f.write("data", 4); u32(2 * n);
  for (uint32_t i = 0; i < n; ++i) {
    const float clipped = std::max(-1.0f, std::min(1.0f, x[i]));
    const int16_t s = static_cast<int16_t>(std::lround(clipped * 32767.0f));
    f.write(reinterpret_cast<const char*>(&s), 2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: synth MODEL.ts LABEL [SEED] [SPREAD] [OUT.wav]\n";
    return 2;
  }
  torch::jit::script::Module synth = torch::jit::load(argv[1]);
  synth.eval();
  const std::string wanted = argv[2];
  const int64_t seed = argc > 3 ? std::stoll(argv[3]) : 0;
  const double spread = argc > 4 ? std::stod(argv[4]) : 0.1;
  const std::string out = argc > 5 ? argv[5] : "generated.wav";

  // the labels are an attribute of the file: a host lists them in its menu
  const auto labels = synth.attr("labels").toList();
  int64_t label = -1;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels.get(i).toStringRef() == wanted) label = static_cast<int64_t>(i);
  }
  if (label < 0) {
    std::cerr << "unknown label '" << wanted << "'; the model knows:";
    for (size_t i = 0; i < labels.size(); ++i) std::cerr << " " << labels.get(i).toStringRef();
    std::cerr << "\n";
    return 2;
  }
  const int64_t rate = synth.attr("sample_rate").toInt();

  torch::NoGradGuard no_grad;
  synth.run_method("generate", label, seed, spread);  // the first call pays for loading: not timed
  const auto start = std::chrono::steady_clock::now();
  const torch::Tensor audio = synth.run_method("generate", label, seed, spread).toTensor();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_wav(out, audio, rate);
  const double sound = static_cast<double>(audio.numel()) / static_cast<double>(rate);
  std::cout << "wrote " << out << ": " << sound << " s of '" << wanted << "' at " << rate << " Hz in "
            << took << " s (real-time factor " << took / sound << ")\n";
  return 0;
}
