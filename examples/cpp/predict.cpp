// roiops_predict: runs an AOTInductor package of roiops' StaticMaskRCNN (`python -m roiops export
// --format aoti`) over PNG images, from C++ alone, and writes its detections as COCO
// results -- what `python -m roiops predict` writes for the same package and images.
//
//   roiops_predict MODEL.aoti.pt2 IMAGE... [--out detections.json] [--batch-size N] [--ops LIB]
//                  [--repeat N]   (then times N more runs of the first batch: the median in ms)
//
// The package calls roiops' ops through torch's dispatcher, so roiops' op library must be loaded
// before it is opened: dlopen, from --ops or the path this program was built with. Images are
// letterboxed to the model's size exactly as roiops/deploy/model_files.py does it, with the same
// ATen operations, so the same package gives the same numbers in both languages.

#include <dlfcn.h>
#include <png.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#ifndef ROIOPS_LIBRARY
#define ROIOPS_LIBRARY ""
#endif

namespace {

// --- what the package says of its model (roiops.deploy.model_files.ModelInfo) -------------------

struct ModelInfo {
  int64_t height = 0, width = 0, batch_min = 1, batch_max = 1;
  std::vector<std::string> classes;
  std::vector<double> image_mean;
  std::string masks;                 // "pasted", "roi" or "none"
  std::string device;                // where the package runs ("cpu", "cuda"): its inputs go there
  std::vector<std::string> outputs;  // the outputs' names, in the order the package returns them

  // The output called `name` (boxes, scores, labels, num_detections, masks, roi_masks).
  const at::Tensor& output(const std::vector<at::Tensor>& values, const std::string& name) const {
    const auto found = std::find(outputs.begin(), outputs.end(), name);
    if (found == outputs.end() || static_cast<size_t>(found - outputs.begin()) >= values.size()) {
      throw std::runtime_error("the package has no output named " + name);
    }
    return values[found - outputs.begin()];
  }
};

// A code point as UTF-8 (json.dumps writes every non-ASCII character as \uXXXX, and those beyond
// the Basic Multilingual Plane as a surrogate pair).
void append_utf8(std::string& out, unsigned code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// A JSON array of strings or numbers as json.dumps writes them (no nesting).
std::vector<std::string> json_array(const std::string& text) {
  std::vector<std::string> items;
  size_t i = text.find('[');
  if (i == std::string::npos) throw std::runtime_error("not a JSON array: " + text);
  std::string item;
  bool in_string = false, any = false;
  for (++i; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\' && i + 1 < text.size()) {
        const char e = text[++i];
        if (e == 'u' && i + 4 < text.size()) {  // \uXXXX, or a surrogate pair \uD8XX\uDCXX
          unsigned code = std::stoul(text.substr(i + 1, 4), nullptr, 16);
          i += 4;
          if (code >= 0xD800 && code < 0xDC00 && i + 6 < text.size() && text[i + 1] == '\\' &&
              text[i + 2] == 'u') {
            const unsigned low = std::stoul(text.substr(i + 3, 4), nullptr, 16);
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
          append_utf8(item, code);
        } else {
          item += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
      } else if (c == '"') {
        in_string = false;
      } else {
        item += c;
      }
    } else if (c == '"') {
      in_string = any = true;
    } else if (c == ',' || c == ']') {
      if (any) items.push_back(item);
      item.clear();
      any = false;
      if (c == ']') break;
    } else if (c != ' ') {
      item += c;
      any = true;
    }
  }
  return items;
}

ModelInfo read_info(const std::unordered_map<std::string, std::string>& metadata) {
  auto get = [&](const std::string& key) {
    auto found = metadata.find("roiops." + key);
    if (found == metadata.end()) {
      throw std::runtime_error("the package has no roiops." + key +
                               " metadata: was it written by `python -m roiops export`?");
    }
    return found->second;
  };
  ModelInfo info;
  info.height = std::stoll(get("image_height"));
  info.width = std::stoll(get("image_width"));
  info.batch_min = std::stoll(get("batch_min"));
  info.batch_max = std::stoll(get("batch_max"));
  info.classes = json_array(get("classes"));
  for (const std::string& m : json_array(get("image_mean"))) info.image_mean.push_back(std::stod(m));
  info.masks = get("masks");
  info.device = get("device");
  if (metadata.count("roiops.outputs")) {
    info.outputs = json_array(get("outputs"));
  } else {  // a package of roiops before 2026-12-07: StaticMaskRCNN's order, which it had too
    info.outputs = {"boxes", "scores", "labels", "num_detections"};
    if (info.masks == "pasted") info.outputs.push_back("masks");
    if (info.masks == "roi") info.outputs.push_back("roi_masks");
  }
  return info;
}

// An AOTInductor package, or a message that says what the file is instead (libtorch's own
// exception for a wrong file is its whole stack).
void check_package(const std::string& path) {
  if (!std::ifstream(path).good()) throw std::runtime_error(path + ": no such file");
  std::vector<std::string> records;
  try {
    records = caffe2::serialize::PyTorchStreamReader(path).getAllRecords();
  } catch (const std::exception&) {
    throw std::runtime_error(path + " is not an AOTInductor package (not a .pt2 archive; an .onnx "
                             "or .xml file runs in Python: python -m roiops predict)");
  }
  for (const std::string& record : records) {
    if (record.find("aotinductor/") != std::string::npos) return;
  }
  throw std::runtime_error(path + " is not an AOTInductor package: a .pt2 ExportedProgram runs in "
                           "Python (python -m roiops predict); for C++ export it with "
                           "--format aoti");
}

// The op library's paste_masks_in_image (roiops' op, through torch's dispatcher).
at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, int64_t height,
                       int64_t width) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("roiops::paste_masks_in_image", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                               c10::SymInt, int64_t)>();
  return op.call(masks, boxes, c10::SymInt(height), c10::SymInt(width), 1);
}

// --- images ------------------------------------------------------------------------------------

// --- reading PNGs as roiops/deploy/images.py's read_image does ---------------------------------

constexpr uint64_t MAX_IMAGE_PIXELS = 89478485;  // pillow's decompression-bomb limit

struct PngPixels {
  std::vector<uint8_t> rgba;  // 8 bits per channel, alpha last
  std::vector<png_bytep> rows;
  png_uint_32 width = 0, height = 0;
  std::string error;
};

void png_error_message(png_structp png, png_const_charp message) {
  static_cast<PngPixels*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

void png_warning_ignored(png_structp, png_const_charp) {}

// The EXIF orientation (tag 0x0112 of the first IFD) in a PNG's eXIf chunk; 1 (upright) without.
unsigned exif_orientation(png_structp png, png_infop info) {
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 size = 0;
  png_bytep exif = nullptr;
  if (!png_get_eXIf_1(png, info, &size, &exif) || size < 8) return 1;
  const bool little = exif[0] == 'I';  // "II": little-endian TIFF, "MM": big-endian
  auto u16 = [&](png_uint_32 at) -> unsigned {
    return little ? exif[at] | exif[at + 1] << 8 : exif[at] << 8 | exif[at + 1];
  };
  const png_uint_32 first = little ? u16(4) | png_uint_32(u16(6)) << 16
                                   : png_uint_32(u16(4)) << 16 | u16(6);  // the IFD's offset
  if (first > size - 2) return 1;
  for (unsigned entry = 0, count = u16(first); entry < count; ++entry) {
    const png_uint_32 at = first + 2 + 12 * entry;
    if (at > size - 10) break;
    if (u16(at) == 0x0112) return u16(at + 8);
  }
#endif
  return 1;
}

// libpng's own reading, transformed to what pillow gives: palettes expanded, greys below 8 bits
// scaled to 8, tRNS as alpha, 16 bits to their high byte (pillow reads 16-bit colour so, and
// read_image 16-bit grey), grey as RGB, opaque alpha added where the file has none. (libpng's
// simplified API would treat 16-bit data as linear light and re-encode it: other values.) libpng
// reports errors by longjmp back here: every C++ object is made before setjmp and lives on.
bool decode_png(FILE* file, PngPixels& out) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &out, png_error_message, png_warning_ignored);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    out.error = "out of memory";
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, file);
  png_read_info(png, info);
  out.width = png_get_image_width(png, info);
  out.height = png_get_image_height(png, info);
  if (uint64_t(out.width) * out.height > MAX_IMAGE_PIXELS) {
    char message[128];  // (a std::string would never be destroyed: png_error longjmps)
    std::snprintf(message, sizeof message,
                  "%ux%u pixels, more than pillow's decompression-bomb limit of %llu",
                  unsigned(out.width), unsigned(out.height),
                  static_cast<unsigned long long>(MAX_IMAGE_PIXELS));
    png_error(png, message);
  }
  const unsigned orientation = exif_orientation(png, info);
  if (orientation > 1) {
    char message[160];
    std::snprintf(message, sizeof message,
                  "its EXIF orientation is %u, and this example does not turn images upright "
                  "(python -m roiops predict does)",
                  orientation);
    png_error(png, message);
  }
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_gray_to_rgb(png);
  png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out.rgba.resize(size_t(out.width) * out.height * 4);
  out.rows.resize(out.height);
  for (png_uint_32 y = 0; y < out.height; ++y) out.rows[y] = &out.rgba[size_t(y) * out.width * 4];
  png_read_image(png, out.rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// [3, H, W] float32 in [0, 1]: colour / 255, composited onto the model's mean colour by its alpha
// / 255 in read_image's float operations (c * a + mean * (1 - a): for an opaque pixel exactly c).
at::Tensor read_png(const std::string& path, const ModelInfo& info) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw std::runtime_error("cannot open the file");
  unsigned char signature[8] = {};
  if (std::fread(signature, 1, 8, file.get()) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
    throw std::runtime_error("not a PNG file");
  }
  std::rewind(file.get());
  PngPixels pixels;
  if (!decode_png(file.get(), pixels)) {
    throw std::runtime_error("PNG decoding failed: " + pixels.error);
  }
  const int64_t height = pixels.height, width = pixels.width;
  at::Tensor image = at::empty({3, height, width}, at::kFloat);
  float* planes = image.data_ptr<float>();
  const float mean[3] = {float(info.image_mean[0]), float(info.image_mean[1]),
                         float(info.image_mean[2])};
  for (int64_t i = 0; i < height * width; ++i) {
    const uint8_t* pixel = &pixels.rgba[size_t(i) * 4];
    const float alpha = pixel[3] / 255.0f;
    for (int c = 0; c < 3; ++c) {
      planes[c * height * width + i] = (pixel[c] / 255.0f) * alpha + mean[c] * (1.0f - alpha);
    }
  }
  return image;
}

at::Tensor read_image(const std::string& path, const ModelInfo& info) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  auto ends_with = [&](const std::string& s) {
    return lower.size() >= s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".png")) return read_png(path, info);
  throw std::runtime_error("not a PNG file (this example reads PNG only: libpng)");
}

// --- letterboxing (model_files.letterbox_size / letterbox) ---------------------------------------

struct Placed {
  size_t image_id;
  std::string path;
  at::Tensor image;  // [3, h, w]
  int64_t scaled_h, scaled_w;
};

Placed place(size_t image_id, const std::string& path, at::Tensor image, const ModelInfo& info) {
  const int64_t height = image.size(1), width = image.size(2);
  const double scale = std::min(static_cast<double>(info.height) / height,
                                static_cast<double>(info.width) / width);
  auto fit = [&](int64_t side, int64_t limit) {
    const int64_t scaled = static_cast<int64_t>(std::floor(side * scale + 0.5));
    return std::min(std::max<int64_t>(scaled, 1), limit);
  };
  return {image_id, path, std::move(image), fit(height, info.height), fit(width, info.width)};
}

at::Tensor letterbox(const Placed& p, const ModelInfo& info) {
  at::Tensor image = p.image;
  if (p.scaled_h != image.size(1) || p.scaled_w != image.size(2)) {
    image = at::upsample_bilinear2d(image.unsqueeze(0), {p.scaled_h, p.scaled_w}, false)[0];
  }
  at::Tensor mean = at::tensor(std::vector<float>(info.image_mean.begin(), info.image_mean.end()));
  at::Tensor canvas = mean.view({3, 1, 1}).expand({3, info.height, info.width}).clone();
  canvas.narrow(1, 0, p.scaled_h).narrow(2, 0, p.scaled_w).copy_(image);
  return canvas;
}

// --- COCO results --------------------------------------------------------------------------------

// COCO's compressed RLE of a binary mask [h, w]: run lengths in column-major order, starting with
// a run of zeros; each count (from the third on, as the difference to the count two before) in
// 5-bit groups, low first, a continuation bit 0x20, offset by 48 into printable characters.
std::string coco_rle(const at::Tensor& mask) {
  const at::Tensor column_major = mask.t().contiguous().to(at::kByte);
  const uint8_t* bits = column_major.data_ptr<uint8_t>();
  const int64_t n = column_major.numel();
  std::vector<int64_t> counts;
  uint8_t current = 0;
  int64_t run = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (bits[i] != current) {
      counts.push_back(run);
      run = 0;
      current = bits[i];
    }
    ++run;
  }
  counts.push_back(run);
  std::string text;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i] - (i > 2 ? counts[i - 2] : 0);
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;  // arithmetic: a negative difference ends at -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      text += static_cast<char>(c + 48);
    }
  }
  return text;
}

// RLE characters run from '0' to 'o': of JSON's escapes only the backslash can occur.
std::string json_escaped(const std::string& text) {
  std::string escaped;
  for (const char c : text) {
    if (c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);  // a double, read back exactly
  return buffer;
}

// One image's rows of the outputs, mapped back to it (predict.py's detections()).
void write_detections(const std::vector<at::Tensor>& outputs, int64_t row, const Placed& p,
                      const ModelInfo& info, std::ostringstream& json, bool& first) {
  // StaticMaskRCNN's outputs, by name.
  const at::Tensor& boxes_all = info.output(outputs, "boxes");
  const at::Tensor& scores_all = info.output(outputs, "scores");
  const at::Tensor& labels_all = info.output(outputs, "labels");
  const at::Tensor& counts = info.output(outputs, "num_detections");
  const int64_t height = p.image.size(1), width = p.image.size(2);
  const int64_t count = counts[row].item<int64_t>();
  const double ratio_x = static_cast<double>(width) / p.scaled_w;
  const double ratio_y = static_cast<double>(height) / p.scaled_h;
  at::Tensor boxes = boxes_all[row].narrow(0, 0, count).to(at::kFloat).cpu();
  boxes = boxes * at::tensor({static_cast<float>(ratio_x), static_cast<float>(ratio_y),
                              static_cast<float>(ratio_x), static_cast<float>(ratio_y)});
  const at::Tensor limits = at::tensor({static_cast<float>(width), static_cast<float>(height),
                                        static_cast<float>(width), static_cast<float>(height)});
  boxes = at::minimum(boxes.clamp_min(0), limits);
  const at::Tensor labels = labels_all[row].narrow(0, 0, count).cpu();
  const at::Tensor scores = scores_all[row].narrow(0, 0, count).to(at::kFloat).cpu();
  at::Tensor masks;
  if (info.masks == "pasted") {
    at::Tensor probabilities = info.output(outputs, "masks")[row]
                                   .narrow(0, 0, count)
                                   .narrow(1, 0, p.scaled_h)
                                   .narrow(2, 0, p.scaled_w);
    probabilities = probabilities.to(at::kFloat).cpu();
    if (p.scaled_h != height || p.scaled_w != width) {
      probabilities =
          at::upsample_bilinear2d(probabilities.unsqueeze(0), {height, width}, false)[0];
    }
    masks = probabilities > 0.5;
  } else if (info.masks == "roi") {  // 28x28 per detection, pasted here as predict.py pastes
    const at::Tensor roi = info.output(outputs, "roi_masks")[row].narrow(0, 0, count);
    masks = paste_masks(roi.unsqueeze(1).to(at::kFloat).cpu(), boxes, height, width)
                .select(1, 0) > 0.5;
  }
  const float* b = boxes.contiguous().data_ptr<float>();
  for (int64_t k = 0; k < count; ++k) {
    const float x1 = b[4 * k], y1 = b[4 * k + 1], x2 = b[4 * k + 2], y2 = b[4 * k + 3];
    json << (first ? "\n" : ",\n") << "  {\"image_id\": " << p.image_id
         << ", \"category_id\": " << labels[k].item<int64_t>() << ", \"bbox\": [" << number(x1)
         << ", " << number(y1) << ", " << number(static_cast<double>(x2) - x1) << ", "
         << number(static_cast<double>(y2) - y1)
         << "], \"score\": " << number(scores[k].item<float>());
    if (masks.defined()) {
      json << ", \"segmentation\": {\"size\": [" << height << ", " << width << "], \"counts\": \""
           << json_escaped(coco_rle(masks[k])) << "\"}";
    }
    json << "}";
    first = false;
  }
  std::cout << p.path << ": " << count << " detections";
  if (count > 0) {
    const int64_t label = labels[0].item<int64_t>();
    const std::string name =
        label < static_cast<int64_t>(info.classes.size()) ? info.classes[label] : "?";
    char best[160];
    std::snprintf(best, sizeof(best), ", best %s %.3f at [%.1f, %.1f, %.1f, %.1f]", name.c_str(),
                  scores[0].item<float>(), b[0], b[1], b[2], b[3]);
    std::cout << best;
  }
  std::cout << "\n";
}

// A positive whole number, or a usage error naming the option.
int64_t positive(const std::string& option, const std::string& value) {
  size_t used = 0;
  int64_t number = 0;
  try {
    number = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || number < 1) {
    throw std::invalid_argument(option + " takes a positive whole number, got '" + value + "'");
  }
  return number;
}

int usage(const char* program) {
  std::cerr << "usage: " << program
            << " MODEL.aoti.pt2 IMAGE... [--out detections.json] [--batch-size N] [--ops LIB]"
               " [--repeat N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ops = ROIOPS_LIBRARY, out = "detections.json", package;
  int64_t batch_size = 4, repeat = 0;
  std::vector<std::string> images;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--out" || arg == "--ops" || arg == "--batch-size" || arg == "--repeat") &&
        i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--out") out = value;
      if (arg == "--ops") ops = value;
      try {
        if (arg == "--batch-size") batch_size = positive(arg, value);
        if (arg == "--repeat") repeat = positive(arg, value);
      } catch (const std::invalid_argument& err) {
        std::cerr << argv[0] << ": " << err.what() << "\n";
        return usage(argv[0]);
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return usage(argv[0]);
    } else if (package.empty()) {
      package = arg;
    } else {
      images.push_back(arg);
    }
  }
  if (package.empty() || images.empty()) return usage(argv[0]);
  if (ops.empty()) {
    std::cerr << "no op library: pass --ops \"$(python -c 'import roiops; "
                 "print(roiops.library_path())')\" (or build with -DROIOPS_LIBRARY=...)\n";
    return 2;
  }
  // RTLD_GLOBAL: the package's code finds the ops through torch's dispatcher, which the library's
  // static initialisers registered them with.
  if (dlopen(ops.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    std::cerr << "cannot load roiops' op library " << ops << ": " << dlerror() << "\n";
    return 1;
  }
  try {
    check_package(package);
    torch::inductor::AOTIModelPackageLoader loader(package);
    const ModelInfo info = read_info(loader.get_metadata());
    batch_size = std::min(std::max(batch_size, info.batch_min), info.batch_max);
    std::cout << package << ": " << info.height << "x" << info.width << " input, "
              << info.classes.size() - 1 << " classes; " << images.size()
              << " images in batches of " << batch_size << "\n";
    std::ostringstream json;
    json << "[";
    bool first = true;
    std::vector<std::string> failed;
    at::Tensor first_batch;  // what --repeat times
    for (size_t start = 0; start < images.size(); start += batch_size) {
      std::vector<Placed> batch;
      for (size_t id = start; id < std::min(images.size(), start + batch_size); ++id) {
        try {
          batch.push_back(place(id, images[id], read_image(images[id], info), info));
        } catch (const std::exception& err) {
          failed.push_back(images[id] + ": " + err.what());
        }
      }
      if (batch.empty()) continue;
      std::vector<at::Tensor> boxed;
      for (const Placed& p : batch) boxed.push_back(letterbox(p, info));
      while (static_cast<int64_t>(boxed.size()) < info.batch_min) boxed.push_back(boxed.back());
      // Letterboxed on the CPU (as predict.py), then moved to the package's device.
      at::Tensor stacked = at::stack(boxed).to(at::Device(info.device));
      if (!first_batch.defined()) first_batch = stacked;
      const std::vector<at::Tensor> outputs = loader.run({stacked});
      for (size_t row = 0; row < batch.size(); ++row) {
        write_detections(outputs, row, batch[row], info, json, first);
      }
    }
    json << "\n]\n";
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(out.c_str(), "w"), std::fclose);
    if (!file) throw std::runtime_error("cannot write " + out);
    std::fputs(json.str().c_str(), file.get());
    std::cout << "wrote " << out << "\n";
    if (repeat > 0 && first_batch.defined()) {
      std::vector<double> milliseconds;
      for (int64_t r = 0; r < repeat; ++r) {
        const auto begin = std::chrono::steady_clock::now();
        // Reading a result back waits for the run's kernels (on a GPU they run asynchronously).
        info.output(loader.run({first_batch}), "num_detections").cpu();
        const std::chrono::duration<double, std::milli> took =
            std::chrono::steady_clock::now() - begin;
        milliseconds.push_back(took.count());
      }
      std::sort(milliseconds.begin(), milliseconds.end());
      std::cout << "model run: median " << milliseconds[milliseconds.size() / 2] << " ms over "
                << repeat << " runs of a batch of " << first_batch.size(0) << "\n";
    }
    if (!failed.empty()) {
      std::cerr << "could not read " << failed.size() << " of " << images.size() << " images:\n";
      for (const std::string& f : failed) std::cerr << "  " << f << "\n";
      return 1;
    }
  } catch (const std::exception& err) {
    std::cerr << "roiops_predict: " << err.what() << "\n";
    return 1;
  }
  return 0;
}
