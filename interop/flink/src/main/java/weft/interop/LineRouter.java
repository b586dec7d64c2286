package weft.interop;

import com.google.protobuf.ByteString;
import java.util.Base64;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Routes an ingress line {@code <function ns/name> TAB <id> TAB <typename> TAB <base64 value>} to
 * that function instance as a TypedValue, the message type of remote functions.
 */
final class LineRouter implements Router<String> {
  @Override
  public void route(String line, Downstream<String> downstream) {
    String[] f = line.split("\t", -1);
    if (f.length != 4) throw new IllegalArgumentException("bad ingress line: " + line);
    String[] fn = f[0].split("/", -1);
    if (fn.length != 2) throw new IllegalArgumentException("bad function type: " + f[0]);
    TypedValue value =
        TypedValue.newBuilder()
            .setTypename(f[2])
            .setHasValue(true)
            .setValue(ByteString.copyFrom(Base64.getDecoder().decode(f[3])))
            .build();
    // Remote functions take TypedValue messages whatever the ingress type is.
    @SuppressWarnings({"unchecked", "rawtypes"})
    Downstream<Object> any = (Downstream) downstream;
    any.forward(new FunctionType(fn[0], fn[1]), f[1], value);
  }
}
