// defines: DatasetRequest, load_dataset, default_data_dir, dataset_names (every source behind one call)
#pragma once
#include "data/cifar10.h"
#include "data/image_set.h"

#include <string>
#include <vector>

namespace dn {

struct DatasetRequest {
    std::string name;          // cifar10, fashion-mnist, mnist or folder
    std::string dir;           // empty: default_data_dir(name)
    // An image folder's files differ in size, so they are resized to this square on load, with
    // this many channels; the fixed-size sets ignore both.
    int64_t folder_size = 224;
    int64_t folder_channels = 3;
};

const std::vector<std::string>& dataset_names();

// cifar10: data/cifar10; fashion-mnist: Debian's /usr/share/datasets/fashion-mnist; mnist:
// data/mnist; folder: none (it must be given).
std::string default_data_dir(const std::string& name);

// cifar10: the binary batches; mnist and fashion-mnist: {train,t10k}-{images-idx3,labels-idx1}-ubyte
// (.gz or raw); folder: DIR/train/<class>/*.png|jpg and DIR/test/<class>/... (torchvision's
// ImageFolder, one per split). Throws with a one-line reason naming the file.
ImageSet load_dataset(const DatasetRequest& request, Split split);

}  // namespace dn
